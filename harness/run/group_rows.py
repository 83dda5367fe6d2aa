"""The cases.csv rows of a group measured in rounds: figures, each case against dense
round by round (`harness.rows.vs_dense`, with the A/A control's floor), the accuracy of
each with its interval and McNemar's test against dense on the same test samples.

Accuracy is compared with dense as trained (`train_epochs`); a compressed variant was
fine-tuned for its `fine_tune_epochs` more, and `accuracy_reference` says so in the row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.prepare.pipeline import PreparedModel
from harness.prepare.training import correct_predictions
from harness.rows.break_even import break_even_columns, case_break_even
from harness.rows.cases import AccuracyFigures, CaseFigures, figures_energy
from harness.rows.stability import StabilityLimits
from harness.rows.stats import mean_std
from harness.rows.vs_dense import vs_dense_all
from harness.run.case import CaseContext, case_row_of
from harness.run.rounds import Bench
from harness.spec.case import Case
from harness.spec.variants import DENSE


@dataclass
class Member:
    """A case of a group that takes part in the rounds: its model and its bench."""

    case: Case
    prepared: PreparedModel
    bench: Bench
    started: str


def accuracy_reference(member: Member, train_epochs: int) -> str:
    """What the accuracy is compared with: `dense trained 10 epochs, this model 3
    fine-tuning epochs more`, or `... as many` when it had no fine-tuning."""
    fine = member.prepared.params.get("fine_tune_epochs")
    more = f"{_epochs(int(fine))} of fine-tuning more" if fine else "as many"
    return f"dense trained {_epochs(train_epochs)}, this model {more}"


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def _correct(ctx: CaseContext, member: Member) -> list[bool]:
    """Which test samples the member's model gets right."""
    prepared = member.prepared
    return correct_predictions(
        prepared.model,
        ctx.dataset(member.case).test,
        device=prepared.device,
        input_dtype=prepared.input_dtype,
    )


def _accuracies(
    ctx: CaseContext, members: Mapping[str, Member], ids: list[str]
) -> dict[str, AccuracyFigures]:
    """Each member's accuracy figures, against dense's answers where the group has it."""
    correct = {i: _correct(ctx, members[i]) for i in ids}
    dense_id = next(
        (i for i in ids if members[i].case.variant == DENSE and not members[i].case.control), None
    )
    dense = correct.get(dense_id) if dense_id else None
    epochs = ctx.suite.train_config().epochs  # `[training] epochs` or `train_epochs`
    out = {}
    for i in ids:
        own = correct[i]
        paired = dense is not None and i != dense_id and len(dense) == len(own)
        out[i] = AccuracyFigures(
            test_samples=len(own),
            correct=sum(own),
            only_dense_correct=sum(d and not o for d, o in zip(dense, own, strict=True))
            if paired
            else None,
            only_case_correct=sum(o and not d for d, o in zip(dense, own, strict=True))
            if paired
            else None,
            reference=accuracy_reference(members[i], epochs),
        )
    return out


def group_rows(
    ctx: CaseContext,
    members: Mapping[str, Member],
    figures: Mapping[str, CaseFigures],
    peer_j_per_sample: Mapping[str, list[float]],
) -> dict[str, dict[str, Any]]:
    """case_id -> cases.csv row, for the members with figures."""
    limits = StabilityLimits.of(ctx.suite.settings)
    ids = [i for i in members if i in figures]
    energies = [
        figures_energy(members[i].case, figures[i], members[i].prepared.accuracy, limits)
        for i in ids
    ]
    vs = vs_dense_all(energies)
    accuracy = _accuracies(ctx, members, ids)
    dense_j = next((e.energy.mean for e in energies if e.is_dense), math.nan)
    rows = {}
    for i in ids:
        m = members[i]
        peer = peer_j_per_sample.get(i)
        extra = {"peer_energy_j_per_sample": mean_std(peer)[0] if peer else None}
        own = m.prepared.preparation
        be = case_break_even(m.case.mode, vs.get(i), dense_j, own.energy_j if own else math.nan)
        extra.update(break_even_columns(be))
        rows[i] = case_row_of(
            ctx,
            m.case,
            m.prepared,
            m.bench.inputs,
            figures[i],
            m.started,
            vs.get(i),
            accuracy[i],
            extra,
        )
    return rows
