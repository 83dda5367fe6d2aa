"""Compare two runs case by case: ratio of measured energy per sample, with its uncertainty.

Energy per sample of one repetition = the sum of `energy_j` over the `in_total` rows of
`measurements.csv` for that case and repetition, divided by the samples it processed.
`samples` is taken once per (node, rank) and summed over ranks, so a distributed
repetition divides the energy of every rank by the samples of every rank. A repetition
with any `in_total` row that is invalid (`valid` false) or has no energy or no samples is
unusable: it is left out and counted.

The ratio B/A of the mean energies per sample gets a 95% confidence interval by the delta
method on the log ratio: var(log R) ~= s_a^2/(n_a m_a^2) + s_b^2/(n_b m_b^2), with a
Student t quantile at Welch-Satterthwaite degrees of freedom, then exponentiated (so the
interval is never negative and is symmetric in log space). The p-value is Welch's t-test
on the two samples of per-repetition energies (`scipy.stats.ttest_ind(equal_var=False)`).
With one repetition on a side there is no CI and no test, and the comparison says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.results import read_rows

ALPHA = 0.05
CI_METHOD = "delta method on log(B/A), Welch-Satterthwaite df"

BOTH, ONLY_A, ONLY_B = "both", "only_a", "only_b"

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def parse_float(text: str | None) -> float:
    """A CSV cell as a float; empty or malformed cells are NaN."""
    if text is None:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_bool(text: str | None, default: bool) -> bool:
    """A CSV cell as a bool ('true'/'false', '1'/'0'); empty or unknown cells give `default`."""
    value = (text or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


DomainKey = tuple[str, str, str]  # (probe, domain, source)


@dataclass
class CaseRepetitions:
    """The usable repetitions of one case, read from measurements.csv.

    `energy_j_per_sample`: total (in_total) energy per sample of each usable repetition, J.
    `domain_energy_j_per_sample`: per usable repetition, (probe, domain, source) -> J/sample.
    `unusable`: repetition labels left out (an invalid row, no energy or no samples).
    """

    case_id: str
    repetitions: list[str] = field(default_factory=list)
    energy_j_per_sample: list[float] = field(default_factory=list)
    domain_energy_j_per_sample: list[dict[DomainKey, float]] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)


def _repetition_sort_key(label: str) -> tuple[int, float, str]:
    number = parse_float(label)
    return (0, number, label) if math.isfinite(number) else (1, 0.0, label)


def case_repetitions(measurement_rows: list[dict[str, str]]) -> dict[str, CaseRepetitions]:
    """Group measurements.csv rows into per-case, per-repetition energy per sample (J)."""
    grouped: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in measurement_rows:
        case_id = row.get("case_id") or ""
        grouped.setdefault(case_id, {}).setdefault(row.get("repetition") or "", []).append(row)
    result: dict[str, CaseRepetitions] = {}
    for case_id, reps in grouped.items():
        case = CaseRepetitions(case_id)
        for label in sorted(reps, key=_repetition_sort_key):
            total_rows = [r for r in reps[label] if parse_bool(r.get("in_total"), False)]
            samples_by_rank: dict[tuple[str, str], float] = {}
            for r in total_rows:
                rank = (r.get("node") or "", r.get("rank") or "")
                samples = parse_float(r.get("samples"))
                if math.isfinite(samples):
                    samples_by_rank[rank] = max(samples_by_rank.get(rank, 0.0), samples)
            samples_total = sum(samples_by_rank.values())
            energies = [parse_float(r.get("energy_j")) for r in total_rows]
            usable = (
                bool(total_rows)
                and all(parse_bool(r.get("valid"), True) for r in total_rows)
                and all(math.isfinite(e) for e in energies)
                and samples_total > 0
            )
            if not usable:
                case.unusable.append(label)
                continue
            domains: dict[DomainKey, float] = {}
            for r, energy_j in zip(total_rows, energies, strict=True):
                key = (r.get("probe") or "", r.get("domain") or "", r.get("source") or "")
                domains[key] = domains.get(key, 0.0) + energy_j / samples_total
            case.repetitions.append(label)
            case.energy_j_per_sample.append(sum(energies) / samples_total)
            case.domain_energy_j_per_sample.append(domains)
        result[case_id] = case
    return result


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for n < 2)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


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


def ratio_ci95_log_delta(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """95% CI of mean(b)/mean(a) by the delta method on the log ratio (None if n < 2)."""
    from scipy import stats

    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2:
        return None
    m_a, s_a = mean_std(a)
    m_b, s_b = mean_std(b)
    if m_a <= 0 or m_b <= 0:
        return None
    v_a = s_a**2 / (n_a * m_a**2)  # relative variance of each mean
    v_b = s_b**2 / (n_b * m_b**2)
    ratio = m_b / m_a
    se = math.sqrt(v_a + v_b)
    if se == 0:
        return ratio, ratio
    df = (v_a + v_b) ** 2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    return ratio * math.exp(-half), ratio * math.exp(half)


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch's t-test p-value (None with n < 2 on a side or no variance at all)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if mean_std(a)[1] == 0 and mean_std(b)[1] == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


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


def load_run_repetitions(run_dir: Path) -> tuple[dict[str, CaseRepetitions], set[str]]:
    """Per-case repetitions from a run's measurements.csv, and every case_id the run names.

    Raises EnergyHarnessError when the directory or its measurements.csv is missing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EnergyHarnessError(
            f"run directory {run_dir} does not exist; give a directory written by "
            "`energy-harness run` (e.g. results/<run-id>)"
        )
    measurements = run_dir / "measurements.csv"
    if not measurements.is_file():
        raise EnergyHarnessError(
            f"{measurements} is missing: {run_dir} is not a finished or started run "
            "directory (`energy-harness run` writes it)"
        )
    reps = case_repetitions(read_rows(measurements))
    case_ids = set(reps) | {r.get("case_id") or "" for r in read_rows(run_dir / "cases.csv")}
    case_ids.discard("")
    reps.pop("", None)
    return reps, case_ids


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
