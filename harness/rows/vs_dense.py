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
- `energy_vs_dense_p`: the test behind the interval (the paired t-test of the mean log
  ratio; Welch's test unpaired), and `energy_vs_dense_p_holm` the same adjusted by Holm's
  method for every comparison of the group (its variants and its control), since a
  group of six compared at 5 % each would call one of them different by chance about
  one run in four.
- `energy_vs_dense_beyond_noise`: the interval excludes 1, the Holm-adjusted p is below
  0.05, the effect |log ratio| exceeds the noise floor's, and the comparison can be
  judged: paired on at least MIN_PAIRS undisturbed rounds, or (unpaired) both cases
  stable. Otherwise `energy_vs_dense_not_judged` says why and what to do.
- `accuracy_vs_dense_pp`: (accuracy of the case - accuracy of dense) x 100, in
  percentage points; beyond noise when McNemar's exact test on the same test samples
  gives p < 0.05 (`accuracy_vs_dense_p_mcnemar`, computed when the row is written).

cases.csv, the run summary, the report and the headline all use this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from harness.measure.sources import combine_sources
from harness.rows.case_energy import CaseEnergy, dense_cases
from harness.rows.columns import VS_DENSE_COLUMNS
from harness.rows.stats import (
    ALPHA,
    holm_adjust,
    paired_ratio_ci95,
    paired_ratio_p,
    ratio_ci95_log_delta,
    welch_p_value,
)
from harness.spec.case import GroupKey

MIN_PAIRS = 3  # undisturbed rounds with both cases, below which no verdict is given
PAIRED, UNPAIRED = "paired", "unpaired"


@dataclass(frozen=True)
class VsDense:
    """One case against its dense case. Ratios are case / dense; NaN where unknown.

    `method`: paired (per round) or unpaired; `pairs`: the rounds behind a paired ratio.
    `noise_floor_pct`: the A/A control's largest distance from 0 % (NaN without one).
    `accuracy_pp`: accuracy change in percentage points (positive = better than dense);
    `accuracy_p`: McNemar's p (NaN unknown). `source`: what both energies are made of.
    `not_judged`: why the difference cannot be called beyond noise although its interval
    may exclude 1, with what to do; else "". `p_value`: the test behind the interval;
    `p_holm`: it adjusted for the `family` comparisons of the group (NaN: no test).
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
    p_value: float = math.nan
    p_holm: float = math.nan
    family: int = 1

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
    def holm_rejects(self) -> bool:
        """The Holm-adjusted p is below 0.05 (True where there is no test to adjust)."""
        return not math.isfinite(self.p_holm) or self.p_holm < ALPHA

    @property
    def beyond_noise(self) -> bool:
        """The interval excludes 1, so does the test once adjusted for the group's
        comparisons, the effect exceeds the control's, and it is judged."""
        return (
            self.excludes_no_change
            and self.holm_rejects
            and not self.within_floor
            and not self.not_judged
        )

    @property
    def control_differs(self) -> bool:
        """An A/A control whose difference from dense is beyond noise (a warning)."""
        return self.is_control and self.excludes_no_change and self.holm_rejects

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
        `~Holm` not once adjusted for the group's comparisons, `not judged`, `A/A` for
        the control itself."""
        if self.is_control:
            return "A/A"
        if self.not_judged:
            return "not judged"
        if not self.has_interval:
            return "no CI"
        if self.beyond_noise:
            return ""
        if not self.excludes_no_change:
            return "~"
        return "~Holm" if not self.holm_rejects else "~A/A"

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
            verdict = "beyond noise: a warning" if self.control_differs else "as it should"
            return (
                f"A/A control: dense measured again, its difference is the noise floor ({verdict})"
            )
        if self.not_judged:
            return f"not judged: {self.not_judged}"
        if not self.has_interval:
            return "no interval (fewer than 2 repetitions): cannot tell whether beyond noise"
        if self.excludes_no_change and not self.holm_rejects:
            return (
                f"within noise: its 95 % interval excludes 0 % (p = {self.p_value:.2g}), but "
                f"not once adjusted for the {self.family} comparisons of its group "
                f"(Holm: p = {self.p_holm:.2g})"
            )
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
                    self.p_value,
                    self.p_holm,
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
        p = paired_ratio_p(ratios)
    else:
        a, b = list(dense.values_j_per_sample), list(case.values_j_per_sample)
        ratio = case.energy.mean / dense.energy.mean if dense.energy.mean > 0 else math.nan
        interval = ratio_ci95_log_delta(a, b)
        low, high = interval if interval else (math.nan, math.nan)
        p = welch_p_value(a, b)
    p_value = math.nan if p is None else p
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
        p_value=p_value,
        p_holm=p_value,  # one comparison on its own; `vs_dense_all` adjusts per group
    )


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
    one; each against its group's noise floor (the A/A control, where there is one),
    its p adjusted by Holm for all the comparisons of its group."""
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
    return _holm_per_group(out, {c.case_id: c.group for c in cases})


def _holm_per_group(vs: dict[str, VsDense], groups: Mapping[str, GroupKey]) -> dict[str, VsDense]:
    """Each comparison's p adjusted by Holm over the comparisons of its group."""
    by_group: dict[GroupKey, list[str]] = {}
    for case_id in vs:
        by_group.setdefault(groups[case_id], []).append(case_id)
    out = dict(vs)
    for ids in by_group.values():
        p = [vs[i].p_value if math.isfinite(vs[i].p_value) else None for i in ids]
        for case_id, adjusted in zip(ids, holm_adjust(p), strict=True):
            out[case_id] = replace(
                vs[case_id],
                p_holm=math.nan if adjusted is None else adjusted,
                family=len(ids),
            )
    return out


def vs_dense_columns(vs: VsDense | None) -> dict[str, Any]:
    """The cases.csv columns of a comparison; empty cells (None) where there is none."""
    return vs.columns() if vs is not None else dict.fromkeys(VS_DENSE_COLUMNS)
