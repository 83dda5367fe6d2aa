"""The preparation columns of cases.csv: what making a case's model cost.

`prepare_energy_j` is the energy of the model's own preparation step, measured by the
run's meter (`harness.prepare.energy`): training for dense, ranking, pruning or
quantising and fine-tuning for a variant. Every variant is made from the trained dense
model, so its whole account, `prepare_total_energy_j`, adds the training of that dense
model; dense's whole account is its training. A model read from the cache keeps the
figure measured when it was prepared (`prepare_energy_origin` = `cache`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.measure.sources import combine_sources
from harness.rows.columns import PREPARE_COLUMNS
from harness.rows.csvfile import parse_float

if TYPE_CHECKING:  # torch-free at import
    from harness.prepare.pipeline import PreparedModel


def preparation_columns(prepared: PreparedModel) -> dict[str, Any]:
    """The PREPARE_COLUMNS of a prepared model; empty cells where a step was not measured
    (no meter, or a cached file made without one)."""
    own, dense = prepared.preparation, prepared.dense_preparation
    if own is None:
        return dict.fromkeys(PREPARE_COLUMNS)
    parts = [own] if prepared.variant == "dense" else [own, dense]
    known = [p for p in parts if p is not None]
    whole = len(known) == len(parts)
    return dict(
        zip(
            PREPARE_COLUMNS,
            (
                own.energy_j,
                own.duration_s,
                own.source,
                own.origin,
                sum(p.energy_j for p in known) if whole else None,
                combine_sources(p.source for p in known) if whole else "",
            ),
            strict=True,
        )
    )


@dataclass(frozen=True)
class Preparation:
    """A case's preparation as cases.csv holds it (NaN, "" where unknown)."""

    energy_j: float
    duration_s: float
    source: str
    origin: str
    total_energy_j: float
    total_source: str

    @property
    def known(self) -> bool:
        return math.isfinite(self.energy_j)


def preparation_of(row: Mapping[str, str]) -> Preparation:
    """The preparation columns of a cases.csv row."""
    return Preparation(
        parse_float(row.get("prepare_energy_j")),
        parse_float(row.get("prepare_duration_s")),
        row.get("prepare_energy_source") or "",
        row.get("prepare_energy_origin") or "",
        parse_float(row.get("prepare_total_energy_j")),
        row.get("prepare_total_energy_source") or "",
    )
