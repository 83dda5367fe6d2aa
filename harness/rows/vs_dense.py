"""Each variant against the dense model of its group: the one definition of "vs dense".

The dense case of a case is the `dense` variant with the same model, dataset, mode,
batch size, device and precision (`group_key`), in the same run directory. Its
repetitions are those of measurements.csv, so a resumed run finds a dense case measured
before the interruption. Where there is none (a shard without it, dense failed or not
yet measured) there is no comparison, and the cases.csv columns stay empty.

- `energy_vs_dense_ratio`: mean energy per sample of the case / that of dense, with the
  95 % interval of the ratio (`harness.rows.stats.ratio_ci95_log_delta`);
- `energy_vs_dense_beyond_noise`: the interval excludes 1 and both cases are stable;
- `accuracy_vs_dense_pp`: (accuracy of the case - accuracy of dense) x 100, in
  percentage points.

cases.csv, the run summary and the report all use this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.sources import combine_sources
from harness.rows.columns import VS_DENSE_COLUMNS
from harness.rows.csvfile import parse_float, read_rows
from harness.rows.repetitions import CaseRepetitions, case_repetitions
from harness.rows.stability import unstable_reason_of
from harness.rows.stats import Summary, ratio_ci95_log_delta, summarize
from harness.spec.variants import DENSE

GROUP_FIELDS = ("model", "dataset", "mode", "batch_size", "device", "precision")
GroupKey = tuple[str, ...]


def group_key(row: Mapping[str, Any]) -> GroupKey:
    """What a case shares with its dense case: model, dataset, mode, batch, device, precision."""
    return tuple(str(row.get(name) or "") for name in GROUP_FIELDS)


def group_fields(group: GroupKey) -> dict[str, str]:
    """A group key as GROUP_FIELDS -> value."""
    return dict(zip(GROUP_FIELDS, group, strict=True))


@dataclass(frozen=True)
class CaseEnergy:
    """A finished case as the comparisons need it.

    `values_j_per_sample`: energy per sample of each usable repetition (J). `accuracy`: a
    fraction (NaN when unknown). `source`: what the energy is made of (`counter`, `model`,
    `counter+model`). `unstable_reason`: why cases.csv marks it unstable ("" if stable).
    """

    case_id: str
    group: GroupKey
    variant: str
    values_j_per_sample: tuple[float, ...]
    accuracy: float
    source: str
    unstable_reason: str = ""

    @property
    def is_dense(self) -> bool:
        return self.variant == DENSE

    @property
    def energy(self) -> Summary:
        """Mean energy per sample (J) and its 95 % interval (never below zero)."""
        return summarize(self.values_j_per_sample)


def case_energy(row: Mapping[str, str], rep: CaseRepetitions | None) -> CaseEnergy | None:
    """The CaseEnergy of a cases.csv row and its repetitions; None unless it finished
    (`status` ok) with usable repetitions."""
    if (row.get("status") or "").strip().lower() != "ok" or rep is None:
        return None
    if not rep.energy_j_per_sample:
        return None
    return CaseEnergy(
        case_id=row.get("case_id") or "",
        group=group_key(row),
        variant=row.get("variant") or "",
        values_j_per_sample=tuple(rep.energy_j_per_sample),
        accuracy=parse_float(row.get("accuracy")),
        source=row.get("measured_source") or combine_sources(rep.sources),
        unstable_reason=unstable_reason_of(row),
    )


def case_energies(
    case_rows: Iterable[Mapping[str, str]], reps: Mapping[str, CaseRepetitions]
) -> list[CaseEnergy]:
    """The finished cases of a run, in cases.csv order (each case_id once)."""
    out: dict[str, CaseEnergy] = {}
    for row in case_rows:
        case_id = row.get("case_id") or ""
        found = case_energy(row, reps.get(case_id))
        if found is not None and case_id not in out:
            out[case_id] = found
    return list(out.values())


@dataclass(frozen=True)
class VsDense:
    """One case against its dense case. Ratios are case / dense; NaN where unknown.

    `accuracy_pp`: accuracy change in percentage points (positive = better than dense).
    `source`: what both energies are made of. `not_judged`: why the difference cannot be
    called beyond noise although its interval may exclude 1 (an unstable case), else "".
    """

    case_id: str
    dense_case_id: str
    energy_ratio: float
    ratio_ci95_low: float
    ratio_ci95_high: float
    accuracy_pp: float
    source: str
    not_judged: str = ""

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.ratio_ci95_low) and math.isfinite(self.ratio_ci95_high)

    @property
    def excludes_no_change(self) -> bool:
        """The 95 % interval of the ratio lies wholly below or wholly above 1."""
        return self.has_interval and (self.ratio_ci95_high < 1 or self.ratio_ci95_low > 1)

    @property
    def beyond_noise(self) -> bool:
        """The interval excludes 1 and both cases are stable."""
        return self.excludes_no_change and not self.not_judged

    @property
    def noise_words(self) -> str:
        """Whether the energy difference is beyond noise, in words a reader can check."""
        if not self.has_interval:
            return "no interval (fewer than 2 repetitions): cannot tell whether beyond noise"
        if self.not_judged:
            return f"not judged beyond noise: {self.not_judged}"
        if self.beyond_noise:
            return "beyond noise: its 95 % interval excludes 0 %"
        return "within noise: its 95 % interval includes 0 %"

    def columns(self) -> dict[str, Any]:
        """The cases.csv columns (VS_DENSE_COLUMNS)."""
        return dict(
            zip(
                VS_DENSE_COLUMNS,
                (
                    self.energy_ratio,
                    self.ratio_ci95_low,
                    self.ratio_ci95_high,
                    self.beyond_noise if self.has_interval else None,
                    self.accuracy_pp,
                ),
                strict=True,
            )
        )


def compare_with_dense(case: CaseEnergy, dense: CaseEnergy) -> VsDense:
    """`case` against `dense` (the dense case of its group)."""
    ratio = case.energy.mean / dense.energy.mean if dense.energy.mean > 0 else math.nan
    interval = ratio_ci95_log_delta(list(dense.values_j_per_sample), list(case.values_j_per_sample))
    unstable = [
        which for which, c in (("the variant", case), ("dense", dense)) if c.unstable_reason
    ]
    return VsDense(
        case_id=case.case_id,
        dense_case_id=dense.case_id,
        energy_ratio=ratio,
        ratio_ci95_low=interval[0] if interval else math.nan,
        ratio_ci95_high=interval[1] if interval else math.nan,
        accuracy_pp=(case.accuracy - dense.accuracy) * 100,
        source=combine_sources([case.source, dense.source]),
        not_judged=f"{' and '.join(unstable)} {'is' if len(unstable) == 1 else 'are'} unstable"
        if unstable
        else "",
    )


def dense_cases(cases: Iterable[CaseEnergy]) -> dict[GroupKey, CaseEnergy]:
    """The dense case of each group (the first one, should a run hold two)."""
    out: dict[GroupKey, CaseEnergy] = {}
    for c in cases:
        if c.is_dense:
            out.setdefault(c.group, c)
    return out


def vs_dense_all(cases: list[CaseEnergy]) -> dict[str, VsDense]:
    """case_id -> its comparison with dense, for every non-dense case whose group has one."""
    dense = dense_cases(cases)
    return {
        c.case_id: compare_with_dense(c, dense[c.group])
        for c in cases
        if not c.is_dense and c.group in dense
    }


def vs_dense_columns(vs: VsDense | None) -> dict[str, Any]:
    """The cases.csv columns of a comparison; empty cells (None) where there is none."""
    return vs.columns() if vs is not None else dict.fromkeys(VS_DENSE_COLUMNS)


def dense_in_run(run_dir: Path, group: GroupKey) -> CaseEnergy | None:
    """The finished dense case of `group` in a run directory (cases.csv and
    measurements.csv), or None when the run has none yet."""
    rows = [
        r
        for r in read_rows(Path(run_dir) / "cases.csv")
        if r.get("variant") == DENSE and group_key(r) == group
    ]
    if not rows:
        return None
    ids = {r.get("case_id") for r in rows}
    measured = [r for r in read_rows(Path(run_dir) / "measurements.csv") if r.get("case_id") in ids]
    found = case_energies(rows, case_repetitions(measured))
    return found[0] if found else None
