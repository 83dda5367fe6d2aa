"""measurements.csv rows: one per rank x domain x repetition, for every kind of case.

A single-process case is a job of one rank (node 0, rank 0). A `ddp-training` case is a
job of many: each rank sends a window record of the domains it owns, and the rows of a
repetition count the whole job's samples, so that the in-total rows add up to its energy
per sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.measure.meter import Measurement
from harness.measure.sources import combine_sources
from harness.spec.case import Case

WindowRecord = dict[str, Any]  # one rank's window: node, rank, duration, samples, domains


def window_record(
    m: Measurement, iterations: int, samples: int, *, node: int = 0, rank: int = 0
) -> WindowRecord:
    """One rank's window as plain values (JSON-ready: DDP ranks send it to rank 0)."""
    return {
        "rank": rank,
        "node": node,
        "iterations": iterations,
        "samples": samples,
        "start_utc": m.start_utc,
        "duration_s": m.duration_s,
        "domains": [d._asdict() for d in m.domains],
        "warnings": list(m.warnings),
        "other_cpu_pct": m.other_cpu_pct,
    }


@dataclass(frozen=True)
class WindowPlace:
    """Where a window sits in the round design (`harness.run.rounds`): its round, its
    place in the round's shuffled order, how many cases the round measured, and the
    worker process that ran it."""

    round: int
    order_in_round: int
    cases_in_round: int
    process: int

    def columns(self) -> dict[str, int]:
        return {
            "round": self.round,
            "order_in_round": self.order_in_round,
            "cases_in_round": self.cases_in_round,
            "process": self.process,
        }


def measurement_rows(
    run_id: str,
    case: Case,
    repetition: int,
    ranks: list[Mapping[str, Any]],
    place: WindowPlace | None = None,
    disturbed_reason: str = "",
) -> list[dict[str, Any]]:
    """measurements.csv rows of one repetition: one per rank x domain, with node and rank,
    its place in the round design and whether it was disturbed (`harness.rows.disturbed`)."""
    world_samples = sum(int(r["samples"]) for r in ranks)
    where = place.columns() if place is not None else {}
    rows = []
    for record in sorted(ranks, key=lambda r: r["rank"]):
        for d in record["domains"]:
            energy = d["energy_j"]
            rows.append(
                {
                    **case.columns(run_id),
                    "node": record["node"],
                    "rank": record["rank"],
                    "repetition": repetition,
                    "probe": d["probe"],
                    "domain": d["domain"],
                    "source": d["source"],
                    "in_total": d["in_total"],
                    "start_utc": record["start_utc"],
                    "duration_s": record["duration_s"],
                    "iterations": record["iterations"],
                    "samples": world_samples,
                    "energy_j": energy,
                    "idle_power_w": d["idle_power_w"],
                    "dynamic_energy_j": d["dynamic_energy_j"],
                    "energy_j_per_sample": None if energy is None else energy / world_samples,
                    "valid": energy is not None,
                    "note": d["invalid_reason"] or d["note"],
                    "invalid_reason": d["invalid_reason"],
                    "other_cpu_pct": record.get("other_cpu_pct"),
                    **where,
                    "disturbed": bool(disturbed_reason),
                    "disturbed_reason": disturbed_reason,
                }
            )
    return rows


@dataclass(frozen=True, slots=True)  # slots: a reader of a large run holds one per window
class RepetitionTotal:
    """One repetition over the whole job: energy of the in-total domains of all ranks."""

    energy_j: float  # NaN when a counted domain was invalid
    dynamic_energy_j: float  # NaN without an idle baseline for every counted domain
    samples: int  # all ranks
    iterations: int  # per rank
    duration_s: float  # the longest rank's window
    sources: frozenset[str] = field(default_factory=frozenset)
    idle_power_w: float = math.nan  # idle baseline of the counted domains; NaN without one
    other_cpu_pct: float | None = None  # the busiest rank's window (None: unknown)

    @property
    def source(self) -> str:
        """What the total is made of: counter, model or counter+model."""
        return combine_sources(self.sources)


def repetition_total(ranks: list[Mapping[str, Any]]) -> RepetitionTotal:
    """Add up one repetition's ranks (each domain is owned by one rank: no double count)."""
    energy = dynamic = idle_w = 0.0
    sources: set[str] = set()
    busy = [r["other_cpu_pct"] for r in ranks if r.get("other_cpu_pct") is not None]
    for record in ranks:
        for d in record["domains"]:
            if not d["in_total"]:
                continue
            sources.add(d["source"])
            energy += math.nan if d["energy_j"] is None else d["energy_j"]
            dyn = d.get("dynamic_energy_j")
            dynamic += math.nan if dyn is None else dyn
            idle = d.get("idle_power_w")
            idle_w += math.nan if idle is None else idle
    return RepetitionTotal(
        energy_j=energy if sources else math.nan,
        dynamic_energy_j=dynamic if sources else math.nan,
        samples=sum(int(r["samples"]) for r in ranks),
        iterations=max(int(r["iterations"]) for r in ranks),
        duration_s=max(float(r["duration_s"]) for r in ranks),
        sources=frozenset(sources),
        idle_power_w=idle_w if sources else math.nan,
        other_cpu_pct=max(busy, default=None),
    )
