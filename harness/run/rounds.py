"""Rounds: the cases of a group measured one window each, in a shuffled order, again and again.

Machines drift (frequency, caches, the allocator, a neighbour, a model just trained).
Windows of one case measured back to back share that state, and the interval over them
cannot see it (Mytkowicz et al., ASPLOS 2009; Georges et al., OOPSLA 2007; Kalibera &
Jones, ISMM 2013). So the cases of a group (same model, dataset, mode, batch, device,
precision) are measured in rounds: each round runs one window of every case, each after
its own warm-up, in an order shuffled per round and seeded by the suite's `seed`
(`round_order`), so slow drifts and per-case states fall on every variant alike, and
each variant is compared with dense round by round (`harness.rows.vs_dense`).

This module holds what both sides of the process boundary share: the plan of a round,
a case ready to measure (`Bench`), and `measure_rounds`, which runs rounds in the
process it is called in (the runner's for `processes = 1`, a worker's otherwise:
`harness.run.processes`, `harness.run.worker`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import error_text
from harness.measure.meter import EnergyMeter
from harness.prepare.pipeline import PreparedModel
from harness.rows.csvfile import parse_float
from harness.rows.measurements import WindowPlace, window_record
from harness.run.peer import CodecarbonPeer
from harness.spec.case import Case, GroupKey, group_key
from harness.spec.catalog import DatasetSplits
from harness.spec.variants import check_trainable
from harness.workloads.batches import make_batch
from harness.workloads.steps import Step, inference_step, training_step
from harness.workloads.windows import calibrate_iterations, measure_workload, warm_up

WARMUP_S = 0.1  # each window's own warm-up lasts at least this (and warmup_iterations steps)


@dataclass(frozen=True)
class RoundPlan:
    """One round: its number and the cases it measures, in the order they run."""

    round: int
    case_ids: tuple[str, ...]


def round_order(
    case_ids: Sequence[str], seed: int, group: GroupKey, round_no: int
) -> tuple[str, ...]:
    """The cases of one round in a shuffled order, the same for the same suite seed,
    group and round (a string seed: Python's `random` hashes it the same in every
    process)."""
    order = sorted(case_ids)
    random.Random(f"{seed}|{'|'.join(group)}|{round_no}").shuffle(order)
    return tuple(order)


def plan_rounds(
    case_ids: Sequence[str], seed: int, group: GroupKey, rounds: Sequence[int]
) -> list[RoundPlan]:
    """The plans of `rounds`, each measuring `case_ids` in its own shuffled order."""
    return [RoundPlan(r, round_order(case_ids, seed, group, r)) for r in rounds]


def split_over_processes(plans: Sequence[RoundPlan], processes: int) -> list[list[RoundPlan]]:
    """Consecutive rounds in `processes` nearly equal parts (fewer when there are fewer
    rounds), one part per fresh worker process."""
    count = max(1, min(processes, len(plans)))
    size, extra = divmod(len(plans), count)
    parts, start = [], 0
    for k in range(count):
        end = start + size + (1 if k < extra else 0)
        parts.append(list(plans[start:end]))
        start = end
    return [p for p in parts if p]


@dataclass
class Bench:
    """A case ready to measure: its step on a fixed batch, and steps per window (0 until
    calibrated)."""

    case: Case
    step: Step
    inputs: Any
    iterations: int = 0


def make_bench(case: Case, prepared: PreparedModel, data: DatasetSplits, seed: int) -> Bench:
    """The case's step on one batch of its split (training: a copy of the model, so the
    prepared model is never changed). Raises VariantUnsupported for a model that cannot
    train."""
    split = "train" if case.mode == "training" else "test"
    inputs, labels = make_batch(
        case.batch_size,
        data=data,
        split=split,
        device=prepared.device,
        input_dtype=prepared.input_dtype,
        seed=seed,
    )
    if case.mode == "training":
        check_trainable(prepared.variant)
        step = training_step(
            prepared.model, inputs, labels, variant=case.variant, precision=case.precision
        )
    else:
        step = inference_step(prepared.model, inputs, case.precision)
    return Bench(case, step, inputs)


@dataclass(frozen=True)
class RoundSettings:
    """How each window of a round is measured."""

    min_window_s: float
    warmup_iterations: int
    process: int = 0  # the worker process, numbered within the group
    peer_country: str | None = None  # run codecarbon's tracker over each window when set


@dataclass(frozen=True)
class WindowDone:
    """One measured window: the case, where it sat, its record (`window_record`) and the
    peer's energy over it (None without a peer)."""

    case_id: str
    place: WindowPlace
    record: dict[str, Any]
    peer_energy_j: float | None = None


@dataclass(frozen=True)
class CaseFailed:
    """A case whose step raised: it is left out of the rounds that follow."""

    case_id: str
    error: str


Emit = Callable[[WindowDone | CaseFailed], None]


def _window(
    meter: EnergyMeter, bench: Bench, settings: RoundSettings, name: str
) -> tuple[Any, float | None]:
    """Warm up, then one window of `bench` (under the peer's tracker when there is one)."""
    if bench.iterations < 1:
        bench.iterations = calibrate_iterations(
            bench.step, settings.min_window_s, warmup_iterations=settings.warmup_iterations
        )
    warm_up(bench.step, settings.warmup_iterations, WARMUP_S)
    if settings.peer_country is None:
        return measure_workload(
            meter, name, bench.step, bench.iterations, min_window_s=settings.min_window_s
        ), None
    with CodecarbonPeer(settings.peer_country) as peer:
        run = measure_workload(
            meter, name, bench.step, bench.iterations, min_window_s=settings.min_window_s
        )
    return run, peer.energy_j


def measure_rounds(
    meter: EnergyMeter,
    benches: dict[str, Bench],
    plans: Sequence[RoundPlan],
    settings: RoundSettings,
    emit: Emit,
    on_window: Callable[[Case, int], None] | None = None,
) -> None:
    """Run `plans` in this process: per round, one window of each case in the round's
    order. Each window is handed to `emit` as soon as it ends; a case whose step raises
    is handed on as CaseFailed and measured no more. `on_window(case, round)` hears
    which window starts (for a progress display)."""
    failed: set[str] = set()
    for plan in plans:
        order = [c for c in plan.case_ids if c in benches and c not in failed]
        for position, case_id in enumerate(plan.case_ids):
            if case_id not in order:
                continue
            bench = benches[case_id]
            if on_window is not None:
                on_window(bench.case, plan.round)
            try:
                run, peer_j = _window(meter, bench, settings, f"{case_id}#{plan.round}")
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # the case fails; the other cases go on
                failed.add(case_id)
                emit(CaseFailed(case_id, error_text(exc)))
                continue
            bench.iterations = run.iterations  # a window that ended too soon was extended
            place = WindowPlace(plan.round, position, len(plan.case_ids), settings.process)
            record = window_record(run.measurement, run.iterations, run.samples)
            emit(WindowDone(case_id, place, record, peer_j))


def round_key(row: dict[str, str]) -> tuple[GroupKey, str]:
    """A measurements.csv row's round: its group and round number ("" without rounds)."""
    return group_key(row), row.get("round") or ""


def incomplete_rounds(rows: Iterable[Mapping[str, str]]) -> set[tuple[GroupKey, str]]:
    """The rounds (`round_key`) that are not complete: fewer cases measured in them than
    they planned (`cases_in_round`), and the "" round of rows without one (a case
    measured on its own, unfinished). Their rows are measured again. Reads each row once
    and keeps only case ids, so `rows` may stream from measurements.csv."""
    seen: dict[tuple[GroupKey, str], set[str]] = {}
    planned: dict[tuple[GroupKey, str], int] = {}
    for row in rows:
        key = round_key(row)
        seen.setdefault(key, set()).add(row.get("case_id") or "")
        cases_in_round = parse_float(row.get("cases_in_round"))
        planned[key] = int(cases_in_round) if math.isfinite(cases_in_round) else 0
    return {k for k in seen if k[1] == "" or len(seen[k]) < planned[k]}
