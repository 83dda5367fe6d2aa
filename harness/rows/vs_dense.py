"""Each variant against the dense model of its group: the one definition of "vs dense".

The dense case of a case is the `dense` variant with the same model, dataset, mode,
batch size, device and precision (`group_key`), in the same run directory. Its
repetitions are those of measurements.csv, so a resumed run finds a dense case measured
before the interruption. Where there is none (a shard without it, dense failed or not
yet measured) there is no comparison, and the cases.csv columns stay empty.

- `energy_vs_dense_ratio` and its 95 % interval. **Paired** where both were measured in
  the same rounds (`harness.run.rounds`): the geometric mean of the per-round ratios
  variant / dense, Student t on their logs (`harness.rows.stats.paired_ratio_ci95`),
  over the rounds in which both windows were usable (not disturbed). **Unpaired** for
  runs without rounds (a `ddp-training` case): mean / mean, delta method
  (`harness.rows.stats.ratio_ci95_log_delta`). `energy_vs_dense_method` says which.
- **The noise floor**: the A/A control (`dense (control)`, the dense model measured
  again in the same rounds) is compared with dense like any variant; the largest
  distance of its interval from 1, in %, is the group's noise floor.
- `energy_vs_dense_beyond_noise`: the interval excludes 1, the effect |log ratio|
  exceeds the noise floor's, and the comparison can be judged: paired on at least
  MIN_PAIRS undisturbed rounds, or (unpaired) both cases stable. Otherwise
  `energy_vs_dense_not_judged` says why and what to do.
- `accuracy_vs_dense_pp`: (accuracy of the case - accuracy of dense) x 100, in
  percentage points; beyond noise when McNemar's exact test on the same test samples
  gives p < 0.05 (`accuracy_vs_dense_p_mcnemar`, computed when the row is written).

cases.csv, the run summary, the report and the headline all use this module.
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
from harness.rows.stats import (
    ALPHA,
    Summary,
    paired_ratio_ci95,
    ratio_ci95_log_delta,
    summarize,
)
from harness.spec.case import GROUP_FIELDS, GroupKey, group_key
from harness.spec.variants import CONTROL_LABEL, DENSE


def group_fields(group: GroupKey) -> dict[str, str]:
    """A group key as GROUP_FIELDS -> value."""
    return dict(zip(GROUP_FIELDS, group, strict=True))


MIN_PAIRS = 3  # undisturbed rounds with both cases, below which no verdict is given


@dataclass(frozen=True)
class CaseEnergy:
    """A finished case as the comparisons need it.

    `values_j_per_sample`: energy per sample of each usable repetition (J); `rounds`:
    the round of each ("" without rounds; empty for none). `windows`: repetitions
    measured in all, `disturbed`: how many were left out as disturbed. `accuracy`: a
    fraction (NaN when unknown); `accuracy_p`: McNemar's p against dense (NaN unknown).
    `source`: what the energy is made of (`counter`, `model`, `counter+model`).
    `unstable_reason`: why cases.csv marks it unstable ("" if stable).
    """

    case_id: str
    group: GroupKey
    variant: str
    values_j_per_sample: tuple[float, ...]
    accuracy: float
    source: str
    unstable_reason: str = ""
    rounds: tuple[str, ...] = ()
    windows: int = 0
    disturbed: int = 0
    accuracy_p: float = math.nan
    accuracy_reference: str = ""

    @property
    def is_dense(self) -> bool:
        return self.variant == DENSE

    @property
    def is_control(self) -> bool:
        return self.variant == CONTROL_LABEL

    @property
    def energy(self) -> Summary:
        """Mean energy per sample (J) and its 95 % interval (never below zero)."""
        return summarize(self.values_j_per_sample)

    @property
    def by_round(self) -> dict[str, float]:
        """Round -> energy per sample (J), for the repetitions measured in rounds."""
        if not self.rounds:
            return {}
        pairs = zip(self.rounds, self.values_j_per_sample, strict=True)
        return {r: v for r, v in pairs if r != ""}

    def disturbed_words(self, which: str) -> str:
        """`dense was disturbed in 3 of 5 windows`, or "" when none was."""
        if not self.disturbed:
            return ""
        return f"{which} was disturbed in {self.disturbed} of {self.windows} windows"


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
        rounds=tuple(rep.rounds),
        windows=rep.windows,
        disturbed=len(rep.disturbed),
        accuracy_p=parse_float(row.get("accuracy_vs_dense_p_mcnemar")),
        accuracy_reference=row.get("accuracy_reference") or "",
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


PAIRED, UNPAIRED = "paired", "unpaired"


@dataclass(frozen=True)
class VsDense:
    """One case against its dense case. Ratios are case / dense; NaN where unknown.

    `method`: paired (per round) or unpaired; `pairs`: the rounds behind a paired ratio.
    `noise_floor_pct`: the A/A control's largest distance from 0 % (NaN without one).
    `accuracy_pp`: accuracy change in percentage points (positive = better than dense);
    `accuracy_p`: McNemar's p (NaN unknown). `source`: what both energies are made of.
    `not_judged`: why the difference cannot be called beyond noise although its interval
    may exclude 1, with what to do; else "".
    """

    case_id: str
    dense_case_id: str
    energy_ratio: float
    ratio_ci95_low: float
    ratio_ci95_high: float
    accuracy_pp: float
    source: str
    not_judged: str = ""
    method: str = UNPAIRED
    pairs: int = 0
    noise_floor_pct: float = math.nan
    accuracy_p: float = math.nan
    accuracy_reference: str = ""
    is_control: bool = False

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.ratio_ci95_low) and math.isfinite(self.ratio_ci95_high)

    @property
    def excludes_no_change(self) -> bool:
        """The 95 % interval of the ratio lies wholly below or wholly above 1."""
        return self.has_interval and (self.ratio_ci95_high < 1 or self.ratio_ci95_low > 1)

    @property
    def within_floor(self) -> bool:
        """The effect is no larger than the A/A control's (False without a control)."""
        if not (math.isfinite(self.noise_floor_pct) and self.energy_ratio > 0):
            return False
        return abs(math.log(self.energy_ratio)) <= math.log1p(self.noise_floor_pct / 100)

    @property
    def beyond_noise(self) -> bool:
        """The interval excludes 1, the effect exceeds the control's, and it is judged."""
        return self.excludes_no_change and not self.within_floor and not self.not_judged

    @property
    def floor_pct(self) -> float:
        """This comparison's own distance from 0 % as a noise floor: the largest of its
        interval's bounds, in % (what a control's comparison contributes)."""
        if not self.has_interval:
            return math.nan
        return max(abs(self.ratio_ci95_low - 1), abs(self.ratio_ci95_high - 1)) * 100

    @property
    def accuracy_beyond_noise(self) -> bool | None:
        """McNemar's p < 0.05 on the same test samples (None when unknown)."""
        return None if not math.isfinite(self.accuracy_p) else self.accuracy_p < ALPHA

    @property
    def mark(self) -> str:
        """What a table shows beside the change: "" beyond noise, `~` within noise (the
        interval includes 0 %), `~A/A` no larger than the A/A control's difference,
        `not judged`, `A/A` for the control itself."""
        if self.is_control:
            return "A/A"
        if self.not_judged:
            return "not judged"
        if not self.has_interval:
            return "no CI"
        if self.beyond_noise:
            return ""
        return "~A/A" if self.excludes_no_change else "~"

    @property
    def accuracy_words(self) -> str:
        """`+0.83 pp, within noise (McNemar p = 0.41)`, with what dense's accuracy is."""
        text = f"{self.accuracy_pp:+.2f} pp"
        if math.isfinite(self.accuracy_p):
            verdict = "beyond noise" if self.accuracy_beyond_noise else "within noise"
            text += f", {verdict} (McNemar p = {self.accuracy_p:.2g})"
        return text + (f"; {self.accuracy_reference}" if self.accuracy_reference else "")

    @property
    def noise_words(self) -> str:
        """Whether the energy difference is beyond noise, in words a reader can check."""
        if self.is_control:
            verdict = (
                "beyond its interval: a warning" if self.excludes_no_change else "as it should"
            )
            return (
                f"A/A control: dense measured again, its difference is the noise floor ({verdict})"
            )
        if self.not_judged:
            return f"not judged: {self.not_judged}"
        if not self.has_interval:
            return "no interval (fewer than 2 repetitions): cannot tell whether beyond noise"
        if self.excludes_no_change and self.within_floor:
            return (
                f"within noise: the A/A control differs from dense by up to "
                f"{self.noise_floor_pct:.1f} %, as much as this"
            )
        if self.beyond_noise:
            return "beyond noise: its 95 % interval excludes 0 %" + self._floor_words()
        return "within noise: its 95 % interval includes 0 %"

    def _floor_words(self) -> str:
        if not math.isfinite(self.noise_floor_pct):
            return ""
        return f" and the A/A control's {self.noise_floor_pct:.1f} %"

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
                    self.method,
                    self.pairs if self.method == PAIRED else None,
                    self.noise_floor_pct,
                    self.not_judged,
                ),
                strict=True,
            )
        )


def _paired(case: CaseEnergy, dense: CaseEnergy) -> list[float] | None:
    """Per-round ratios case / dense over the rounds both were usable in; None when the
    two were not measured in rounds together."""
    own, ref = case.by_round, dense.by_round
    if not own or not ref:
        return None
    return [own[r] / ref[r] for r in own if r in ref and ref[r] > 0]


def _not_judged(case: CaseEnergy, dense: CaseEnergy, ratios: list[float] | None) -> str:
    """Why the comparison cannot be judged, with what to do; "" when it can."""
    if ratios is None:  # unpaired: both figures must be stable on their own
        unstable = [w for w, c in (("the variant", case), ("dense", dense)) if c.unstable_reason]
        verb = "is" if len(unstable) == 1 else "are"
        return f"{' and '.join(unstable)} {verb} unstable" if unstable else ""
    spoilt = [
        c.disturbed_words(which)
        for which, c in (("dense", dense), ("the variant", case))
        if c.windows and c.disturbed >= c.windows
    ]
    if spoilt:
        return (
            f"{'; '.join(spoilt)}, so its figure comes from disturbed windows; run again "
            "on a quieter machine"
        )
    if len(ratios) >= MIN_PAIRS:
        return ""
    why = [w for w in (dense.disturbed_words("dense"), case.disturbed_words("the variant")) if w]
    return (
        f"only {len(ratios)} rounds measured both undisturbed (at least {MIN_PAIRS} needed)"
        + (f": {'; '.join(why)}" if why else "")
        + "; run again on a quieter machine or with more `repetitions`"
    )


def compare_with_dense(
    case: CaseEnergy, dense: CaseEnergy, noise_floor_pct: float = math.nan
) -> VsDense:
    """`case` against `dense` (the dense case of its group), paired where both were
    measured in rounds; `noise_floor_pct`: the group's A/A control's (NaN without one)."""
    ratios = _paired(case, dense)
    if ratios is not None:
        paired = paired_ratio_ci95(ratios)
        if paired is not None:
            ratio, low, high = paired
        else:
            ratio, low, high = (ratios[0] if ratios else math.nan), math.nan, math.nan
    else:
        ratio = case.energy.mean / dense.energy.mean if dense.energy.mean > 0 else math.nan
        interval = ratio_ci95_log_delta(
            list(dense.values_j_per_sample), list(case.values_j_per_sample)
        )
        low, high = interval if interval else (math.nan, math.nan)
    return VsDense(
        case_id=case.case_id,
        dense_case_id=dense.case_id,
        energy_ratio=ratio,
        ratio_ci95_low=low,
        ratio_ci95_high=high,
        accuracy_pp=(case.accuracy - dense.accuracy) * 100,
        source=combine_sources([case.source, dense.source]),
        not_judged=_not_judged(case, dense, ratios),
        method=UNPAIRED if ratios is None else PAIRED,
        pairs=len(ratios or ()),
        noise_floor_pct=math.nan if case.is_control else noise_floor_pct,
        accuracy_p=case.accuracy_p,
        accuracy_reference=case.accuracy_reference,
        is_control=case.is_control,
    )


def dense_cases(cases: Iterable[CaseEnergy]) -> dict[GroupKey, CaseEnergy]:
    """The dense case of each group (the first one, should a run hold two)."""
    out: dict[GroupKey, CaseEnergy] = {}
    for c in cases:
        if c.is_dense:
            out.setdefault(c.group, c)
    return out


def noise_floors(cases: Iterable[CaseEnergy]) -> dict[GroupKey, VsDense]:
    """The A/A control of each group against its dense case (groups with both)."""
    cases = list(cases)
    dense = dense_cases(cases)
    return {
        c.group: compare_with_dense(c, dense[c.group])
        for c in cases
        if c.is_control and c.group in dense
    }


def vs_dense_all(cases: list[CaseEnergy]) -> dict[str, VsDense]:
    """case_id -> its comparison with dense, for every non-dense case whose group has
    one; each against its group's noise floor (the A/A control, where there is one)."""
    dense = dense_cases(cases)
    floors = noise_floors(cases)
    out = {}
    for c in cases:
        if c.is_dense or c.group not in dense:
            continue
        control = floors.get(c.group)
        if c.is_control and control is not None:
            out[c.case_id] = control
            continue
        floor = control.floor_pct if control is not None else math.nan
        out[c.case_id] = compare_with_dense(c, dense[c.group], floor)
    return out


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
