"""Compare two runs case by case: ratio of measured energy per sample, with its uncertainty.

Energy per sample of each repetition comes from measurements.csv (see
`harness.rows.repetitions`). The ratio B/A of the mean energies per sample gets a 95%
confidence interval (`harness.rows.stats.ratio_ci95_log_delta`). The p-value is Welch's t-test
on the two samples of per-repetition energies (`scipy.stats.ttest_ind(equal_var=False)`).
With one repetition on a side there is no CI and no test, and the comparison says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.rows.repetitions import CaseRepetitions, load_run_repetitions
from harness.rows.stats import ALPHA, mean_std, ratio_ci95_log_delta, welch_p_value
from harness.rows.stats import RATIO_CI_METHOD as CI_METHOD  # noqa: F401 (re-exported)

BOTH, ONLY_A, ONLY_B = "both", "only_a", "only_b"


@dataclass(frozen=True)
class CaseComparison:
    """One case in two runs. Energies are measured joules per sample (mean over repetitions).

    `presence`: 'both', 'only_a' or 'only_b'. `ratio_b_over_a` and its 95% CI
    (`ratio_ci95_low`, `ratio_ci95_high`) are None where they cannot be computed, and
    `note` says why. `significant` is True when Welch's p < 0.05.
    """

    case_id: str
    presence: str
    n_a: int
    n_b: int
    mean_a_j_per_sample: float | None
    mean_b_j_per_sample: float | None
    std_a_j_per_sample: float | None
    std_b_j_per_sample: float | None
    ratio_b_over_a: float | None
    ratio_ci95_low: float | None
    ratio_ci95_high: float | None
    p_value: float | None
    significant: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _none_if_nan(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def compare_cases(
    a: list[float], b: list[float], case_id: str = "", alpha: float = ALPHA
) -> CaseComparison:
    """Compare per-repetition energies per sample (J) of one case present in both runs."""
    m_a, s_a = mean_std(a)
    m_b, s_b = mean_std(b)
    notes: list[str] = []
    ratio = m_b / m_a if len(a) and len(b) and m_a > 0 else math.nan
    if not a or not b:
        side = "A" if not a else "B"
        notes.append(f"no usable repetition in {side}")
    elif m_a <= 0:
        notes.append("mean energy in A is not positive: no ratio")
    ci = ratio_ci95_log_delta(a, b)
    p = welch_p_value(a, b)
    if a and b and (len(a) < 2 or len(b) < 2):
        sides = " and ".join(s for s, v in (("A", a), ("B", b)) if len(v) < 2)
        notes.append(f"n=1 in {sides}: no confidence interval and no t-test")
    elif len(a) >= 2 and len(b) >= 2 and p is None:
        notes.append("no spread in either run: no t-test")
    return CaseComparison(
        case_id=case_id,
        presence=BOTH,
        n_a=len(a),
        n_b=len(b),
        mean_a_j_per_sample=_none_if_nan(m_a),
        mean_b_j_per_sample=_none_if_nan(m_b),
        std_a_j_per_sample=_none_if_nan(s_a),
        std_b_j_per_sample=_none_if_nan(s_b),
        ratio_b_over_a=_none_if_nan(ratio),
        ratio_ci95_low=ci[0] if ci else None,
        ratio_ci95_high=ci[1] if ci else None,
        p_value=p,
        significant=p is not None and p < alpha,
        note="; ".join(notes),
    )


def _one_side(case_id: str, presence: str, values: list[float]) -> CaseComparison:
    mean, std = mean_std(values)
    in_a = presence == ONLY_A
    run = "A" if in_a else "B"
    return CaseComparison(
        case_id=case_id,
        presence=presence,
        n_a=len(values) if in_a else 0,
        n_b=0 if in_a else len(values),
        mean_a_j_per_sample=_none_if_nan(mean) if in_a else None,
        mean_b_j_per_sample=None if in_a else _none_if_nan(mean),
        std_a_j_per_sample=_none_if_nan(std) if in_a else None,
        std_b_j_per_sample=None if in_a else _none_if_nan(std),
        ratio_b_over_a=None,
        ratio_ci95_low=None,
        ratio_ci95_high=None,
        p_value=None,
        significant=False,
        note=f"only in run {run}",
    )


def compare_runs(run_a: Path, run_b: Path, alpha: float = ALPHA) -> list[CaseComparison]:
    """Per-case comparison of run B against run A, sorted: cases in both, then only A, only B.

    A case is present in a run when measurements.csv or cases.csv names it. Raises
    EnergyHarnessError when a run directory or its measurements.csv is missing.
    """
    reps_a, ids_a = load_run_repetitions(run_a)
    reps_b, ids_b = load_run_repetitions(run_b)

    def values(reps: dict[str, CaseRepetitions], case_id: str) -> list[float]:
        return reps[case_id].energy_j_per_sample if case_id in reps else []

    def with_unusable(comparison: CaseComparison) -> CaseComparison:
        notes = [comparison.note] if comparison.note else []
        for run, reps in (("A", reps_a), ("B", reps_b)):
            left_out = reps[comparison.case_id].unusable if comparison.case_id in reps else []
            if left_out:
                notes.append(f"{len(left_out)} unusable repetition(s) in {run} left out")
        return replace(comparison, note="; ".join(notes))

    result = [
        with_unusable(compare_cases(values(reps_a, c), values(reps_b, c), c, alpha))
        for c in sorted(ids_a & ids_b)
    ]
    result += [_one_side(c, ONLY_A, values(reps_a, c)) for c in sorted(ids_a - ids_b)]
    result += [_one_side(c, ONLY_B, values(reps_b, c)) for c in sorted(ids_b - ids_a)]
    return result
