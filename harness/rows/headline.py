"""The answer at a glance: per group, the best variant on the energy/accuracy front vs
dense, and the estimate's typical error.

The front is drawn with the noise in mind: a case is dominated only when another case
uses less energy beyond both intervals (the other's upper 95 % bound below this one's
lower bound) and is not worse in accuracy. A case without an interval (one repetition)
counts its mean as both bounds. Cases without an accuracy are not on the front.

The best variant of a group is, among the non-dense cases on its front, the one that
saves the most energy vs dense beyond noise (`harness.rows.vs_dense`); when none on the
front does, the one with the lowest energy ratio, with why it is not beyond noise
(within noise, or a case unstable). With it, its preparation energy and its break-even
(`harness.rows.break_even`).

The run summary and the report print this, in the words of `harness.report.headline`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from harness.estimate.error import estimate_error_pct
from harness.estimate.names import DENSE_HW
from harness.measure.sources import combine_sources
from harness.rows.break_even import BreakEven, run_break_evens
from harness.rows.case_energy import CaseEnergy, case_energies
from harness.rows.columns import estimate_prefix, finished
from harness.rows.csvfile import parse_float, read_rows
from harness.rows.preparation import Preparation, preparation_of
from harness.rows.repetitions import load_run_repetitions
from harness.rows.vs_dense import VsDense, vs_dense_all
from harness.spec.case import GroupKey


def _bounds(case: CaseEnergy) -> tuple[float, float]:
    energy = case.energy
    if math.isfinite(energy.ci95_low) and math.isfinite(energy.ci95_high):
        return energy.ci95_low, energy.ci95_high
    return energy.mean, energy.mean


def dominates(q: CaseEnergy, p: CaseEnergy) -> bool:
    """`q` uses less energy than `p` beyond both intervals and is not worse in accuracy."""
    return _bounds(q)[1] < _bounds(p)[0] and q.accuracy >= p.accuracy


def noise_aware_front(cases: Iterable[CaseEnergy]) -> list[CaseEnergy]:
    """The cases no other case dominates (`dominates`), in order of increasing energy."""
    usable = [c for c in cases if math.isfinite(c.accuracy) and c.energy.mean > 0]
    front = [p for p in usable if not any(dominates(q, p) for q in usable if q is not p)]
    return sorted(front, key=lambda c: (c.energy.mean, -c.accuracy))


@dataclass(frozen=True)
class GroupHeadline:
    """One group's answer. `best` is None when there is nothing to compare (`note` says why)."""

    group: GroupKey
    front: tuple[str, ...]  # case ids, in order of increasing energy
    best: VsDense | None
    best_variant: str
    note: str
    preparation: Preparation | None = None  # the best variant's, from cases.csv
    break_even: BreakEven | None = None  # the best variant's (inference groups)


@dataclass(frozen=True)
class EstimateErrorSummary:
    """The estimate's error over the finished cases: median and range, in %."""

    n: int
    median_pct: float
    min_pct: float
    max_pct: float


_NONE = EstimateErrorSummary(0, math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Headline:
    """Per group the best variant vs dense; the estimate's typical error; `source`: what
    every measured figure is made of (`counter`, `model`, `counter+model`); with a
    simulated accelerator, the simulation's typical distance from the measurement and
    from the estimate (the same summary of `simulated_error_pct`, `_vs_estimate_pct`)."""

    groups: tuple[GroupHeadline, ...]
    estimate_error: EstimateErrorSummary
    source: str
    simulated_error: EstimateErrorSummary = _NONE
    simulated_vs_estimate: EstimateErrorSummary = _NONE
    simulated_accelerator: str = ""


def _best(front: list[CaseEnergy], vs: Mapping[str, VsDense]) -> VsDense | None:
    compared = [vs[c.case_id] for c in front if c.case_id in vs]
    savers = [v for v in compared if v.beyond_noise and v.energy_ratio < 1]
    pool = savers or [v for v in compared if math.isfinite(v.energy_ratio)]
    return min(pool, key=lambda v: v.energy_ratio, default=None)


def _group_headline(
    group: GroupKey, cases: list[CaseEnergy], vs: Mapping[str, VsDense]
) -> GroupHeadline:
    cases = [c for c in cases if not c.is_control]  # the A/A control is no variant
    front = noise_aware_front(cases)
    has_dense = any(c.is_dense for c in cases)
    best = _best(front, vs)
    note = ""
    if not has_dense:
        note = "no finished dense case in this group to compare with"
    elif not any(not c.is_dense for c in cases):
        note = "no finished variant besides dense"
    elif best is None:
        note = "no variant on the front has an energy ratio vs dense"
    variant = next((c.variant for c in cases if best and c.case_id == best.case_id), "")
    return GroupHeadline(group, tuple(c.case_id for c in front), best, variant, note)


def error_summary(case_rows: Iterable[Mapping[str, str]], column: str) -> EstimateErrorSummary:
    """Median and range of a cases.csv column defined as the estimate error is
    (`estimate_error_pct`, `simulated_error_pct`, ...) over the finished cases."""
    return _summary(parse_float(r.get(column)) for r in case_rows if finished(r))


def estimate_error_summary(
    case_rows: Iterable[Mapping[str, str]], cases: Iterable[CaseEnergy] = ()
) -> EstimateErrorSummary:
    """`error_summary` of `estimate_error_pct`, where a row without one gets it by the
    one definition from its dense-hw estimate and the measured mean of its case among
    the finished `cases`, as the report's table does (marked * there)."""
    means = {c.case_id: c.energy.mean for c in cases}
    estimate_column = estimate_prefix(DENSE_HW) + "energy_j_per_sample"

    def error(row: Mapping[str, str]) -> float:
        known = parse_float(row.get("estimate_error_pct"))
        if math.isfinite(known):
            return known
        mean = means.get(row.get("case_id") or "")
        computed = estimate_error_pct(parse_float(row.get(estimate_column)), mean)
        return math.nan if computed is None else computed

    return _summary(error(r) for r in case_rows if finished(r))


def _summary(errors: Iterable[float]) -> EstimateErrorSummary:
    finite = [e for e in errors if math.isfinite(e)]
    if not finite:
        return EstimateErrorSummary(0, math.nan, math.nan, math.nan)
    return EstimateErrorSummary(len(finite), statistics.median(finite), min(finite), max(finite))


def run_headline(run_dir: Path) -> Headline:
    """The headline of a run directory (its cases.csv and measurements.csv)."""
    reps, _ = load_run_repetitions(run_dir)
    case_rows = read_rows(Path(run_dir) / "cases.csv")
    return headline(case_energies(case_rows, reps), case_rows)


def _with_account(
    g: GroupHeadline, rows: Mapping[str, Mapping[str, str]], bes: Mapping[str, BreakEven]
) -> GroupHeadline:
    """The group's answer with its best variant's preparation and break-even."""
    if g.best is None or g.best.case_id not in rows:
        return g
    own = preparation_of(rows[g.best.case_id])
    return replace(g, preparation=own, break_even=bes.get(g.best.case_id))


def headline(cases: list[CaseEnergy], case_rows: Iterable[Mapping[str, str]]) -> Headline:
    """The headline of a run: its finished cases (`case_energies`) and cases.csv rows."""
    case_rows = list(case_rows)
    vs = vs_dense_all(cases)
    bes = run_break_evens(case_rows, cases, vs)
    by_id = {r.get("case_id") or "": r for r in case_rows}
    groups: dict[GroupKey, list[CaseEnergy]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    accelerators = sorted({r.get("simulated_accelerator") or "" for r in case_rows} - {""})
    answers = (_group_headline(g, members, vs) for g, members in groups.items())
    return Headline(
        groups=tuple(_with_account(g, by_id, bes) for g in answers),
        estimate_error=estimate_error_summary(case_rows, cases),
        source=combine_sources(c.source for c in cases) if cases else "",
        simulated_error=error_summary(case_rows, "simulated_error_pct"),
        simulated_vs_estimate=error_summary(case_rows, "simulated_vs_estimate_pct"),
        simulated_accelerator=", ".join(accelerators),
    )
