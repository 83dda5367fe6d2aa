"""Break-even: the number of inferences after which a variant's saving per inference vs
dense repays the energy it cost to make beyond dense. The one definition.

    N = dP / (e_d x (1 - r))

- `dP`: the variant's extra preparation energy vs dense, J. Every variant is made from
  the trained dense model, so both accounts hold that training and it cancels: `dP` is
  the variant's own step (ranking, pruning or quantising, fine-tuning),
  `prepare_energy_j` of its row (`harness.rows.preparation`).
- `e_d`: dense's energy per sample (per inference), J: the mean over its usable windows,
  the same energy (total, not above idle) that the preparation window measures.
- `r`: the variant's energy ratio vs dense (`harness.rows.vs_dense.VsDense`).

The interval: N is a decreasing function of r for r < 1, so the ratio's 95 % interval
[r_low, r_high] maps to N's, [dP / (e_d (1 - r_low)), dP / (e_d (1 - r_high))] (a
variant beyond noise has r_high < 1, so both are finite): confidence limits carried
through a monotone function (Casella & Berger, *Statistical Inference*, 2nd ed., 2002,
ch. 9). It carries the ratio's uncertainty only: `e_d` and `dP` are taken as measured
(one window each for `dP`, the mean of the windows for `e_d`).

"never": the variant saves nothing beyond noise (`VsDense.beyond_noise` false) or uses
at least as much energy per inference as dense (r >= 1). Only inference cases have a
break-even: a training case's samples are not inferences that repay anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.rows.case_energy import CaseEnergy, dense_cases
from harness.rows.columns import BREAK_EVEN_COLUMNS
from harness.rows.preparation import preparation_of
from harness.rows.vs_dense import VsDense

NEVER = "never"
INFERENCE = "inference"


@dataclass(frozen=True)
class BreakEven:
    """A variant's break-even, in inferences (samples): `math.inf` is never, NaN unknown.
    `extra_prepare_j`: dP; `saving_j_per_inference`: e_d x (1 - r); `note`: why never or
    unknown ("" otherwise)."""

    inferences: float
    ci95_low: float
    ci95_high: float
    extra_prepare_j: float
    saving_j_per_inference: float
    note: str = ""

    @property
    def never(self) -> bool:
        return math.isinf(self.inferences)

    def columns(self) -> dict[str, Any]:
        """The cases.csv columns (BREAK_EVEN_COLUMNS): `never` for an infinite count."""
        values = (self.inferences, self.ci95_low, self.ci95_high)
        cells = [NEVER if math.isinf(v) else (None if math.isnan(v) else v) for v in values]
        return dict(zip(BREAK_EVEN_COLUMNS, (*cells, self.note), strict=True))


def _inferences(extra_j: float, dense_j: float, ratio: float) -> float:
    """dP / (e_d (1 - r)); never (inf) when r >= 1."""
    if ratio >= 1:
        return math.inf
    return max(extra_j, 0.0) / (dense_j * (1 - ratio))


def break_even(vs: VsDense, dense_j_per_sample: float, extra_prepare_j: float) -> BreakEven:
    """The break-even of the comparison `vs`, with dense's energy per sample (J) and the
    variant's extra preparation energy (J); see the module's docstring."""
    r, e_d = vs.energy_ratio, dense_j_per_sample
    saving = e_d * (1 - r) if math.isfinite(e_d) else math.nan
    never = math.inf, math.inf, math.inf
    if not math.isfinite(r) or r >= 1:
        note = "uses at least as much energy per inference as dense"
        return BreakEven(*never, extra_prepare_j, saving, note if math.isfinite(r) else "no ratio")
    if not vs.beyond_noise:
        why = "saves nothing beyond noise" + ("; not judged" if vs.not_judged else "")
        return BreakEven(*never, extra_prepare_j, saving, why)
    if not (math.isfinite(extra_prepare_j) and math.isfinite(e_d) and e_d > 0):
        what = "preparation energy" if not math.isfinite(extra_prepare_j) else "dense's energy"
        return BreakEven(math.nan, math.nan, math.nan, extra_prepare_j, saving, f"{what} unknown")
    return BreakEven(
        _inferences(extra_prepare_j, e_d, r),
        _inferences(extra_prepare_j, e_d, vs.ratio_ci95_low),
        _inferences(extra_prepare_j, e_d, vs.ratio_ci95_high),
        extra_prepare_j,
        saving,
    )


def case_break_even(
    mode: str, vs: VsDense | None, dense_j_per_sample: float, extra_prepare_j: float
) -> BreakEven | None:
    """The break-even of a case, or None where it has none: not an inference case, no
    comparison with dense, or the A/A control (dense itself)."""
    if mode != INFERENCE or vs is None or vs.is_control:
        return None
    return break_even(vs, dense_j_per_sample, extra_prepare_j)


def break_even_columns(be: BreakEven | None) -> dict[str, Any]:
    """The cases.csv columns of a break-even; empty cells where there is none."""
    return be.columns() if be is not None else dict.fromkeys(BREAK_EVEN_COLUMNS)


def run_break_evens(
    case_rows: Iterable[Mapping[str, str]],
    cases: Iterable[CaseEnergy],
    vs: Mapping[str, VsDense],
) -> dict[str, BreakEven]:
    """case_id -> break-even, for a run's finished inference variants: each against its
    group's dense case (`cases`, `vs` as `harness.rows.vs_dense.vs_dense_all` gives),
    with its preparation energy from cases.csv."""
    cases = list(cases)
    dense = dense_cases(cases)
    groups = {c.case_id: c.group for c in cases}
    out = {}
    for row in case_rows:
        case_id = row.get("case_id") or ""
        v, group = vs.get(case_id), groups.get(case_id)
        ref = dense.get(group) if group is not None else None
        if v is None or ref is None:
            continue
        found = case_break_even(
            row.get("mode") or "", v, ref.energy.mean, preparation_of(row).energy_j
        )
        if found is not None:
            out[case_id] = found
    return out
