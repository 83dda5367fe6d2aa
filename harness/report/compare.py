"""Compare two runs case by case: ratio of measured energy per sample, with its uncertainty.

Two runs of the same suite differ by more than their windows do: each run's processes
start in another machine state (memory layout, frequency, neighbours). Windows of one
process share that state, so a test over windows calls two identical runs different
(Kalibera & Jones, ISMM 2013: the variance of the highest level of repetition must be
sampled). So the unit of comparison is the **process**: the mean energy per sample of
each worker process of a case (`process` in measurements.csv; a suite's `processes`,
by default one per round), from its usable windows (`harness.rows.repetitions`).

- With at least two processes on each side: the ratio B/A of the means of the process
  means, its 95 % interval (`harness.rows.stats.ratio_ci95_log_delta`) and Welch's
  t-test on the process means (`scipy.stats.ttest_ind(equal_var=False)`), adjusted with
  Holm's method for the number of cases tested (`harness.rows.stats`). A change is
  significant where the adjusted p < 0.05 and neither run marks the case unstable.
- With one process on a side (`processes = 1`, a `ddp-training` case): no p-value,
  since the run cannot show its run-to-run variance; instead the **smallest detectable
  change**, the half-width of the ratio's 95 % interval over windows, which is a lower
  bound (variance between runs would add to it).

Each side's source (measured or MODELLED) is given beside the ratio, and `run_differences`
says when the two runs differ in precision, probes, machine or suite.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.measure.sources import combine_sources, source_label
from harness.rows.case_energy import case_energies
from harness.rows.csvfile import read_rows
from harness.rows.repetitions import CaseRepetitions, load_run_repetitions
from harness.rows.stability import unstable_reason_of
from harness.rows.stats import ALPHA, holm_adjust, mean_std, ratio_ci95_log_delta, welch_p_value
from harness.rows.stats import RATIO_CI_METHOD as CI_METHOD  # noqa: F401 (re-exported)
from harness.rows.vs_dense import VsDense, vs_dense_all

BOTH, ONLY_A, ONLY_B = "both", "only_a", "only_b"


@dataclass(frozen=True)
class CaseComparison:
    """One case in two runs. Energies are measured joules per sample (mean of the process
    means); `n_a`, `n_b`: processes, `windows_a`, `windows_b`: usable windows.

    `presence`: 'both', 'only_a' or 'only_b'. `ratio_b_over_a` and its 95% CI
    (`ratio_ci95_low`, `ratio_ci95_high`) are None where they cannot be computed, and
    `note` says why. `p_value` is Welch's; `p_value_holm` the same adjusted for every case
    compared. `significant` is True when `p_value_holm` < 0.05 and neither run marks the
    case unstable. `source_a`, `source_b`: what each run's figure is made of (`counter`,
    `model`, `counter+model`); `unstable_a`, `unstable_b`: why a run marks it unstable.
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
    p_value_holm: float | None = None
    source_a: str = ""
    source_b: str = ""
    unstable_a: str = ""
    unstable_b: str = ""
    windows_a: int = 0
    windows_b: int = 0
    smallest_detectable_pct: float | None = None  # where one side has one process

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _none_if_nan(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def process_means(rep: CaseRepetitions) -> list[float]:
    """The mean energy per sample (J) of each process's usable windows of a case."""
    by_process: dict[str, list[float]] = {}
    for process, value in zip(rep.processes, rep.energy_j_per_sample, strict=True):
        by_process.setdefault(process, []).append(value)
    return [mean_std(values)[0] for values in by_process.values()]


def smallest_detectable_pct(a: list[float], b: list[float]) -> float | None:
    """Half-width, in %, of the 95 % interval of mean(b)/mean(a) over windows (None with
    fewer than two on a side): a change smaller than this is noise even within one run."""
    ci = ratio_ci95_log_delta(a, b)
    if ci is None or not all(math.isfinite(v) and v > 0 for v in ci):
        return None
    return (math.sqrt(ci[1] / ci[0]) - 1) * 100


def compare_cases(
    a: list[float],
    b: list[float],
    case_id: str = "",
    alpha: float = ALPHA,
    *,
    windows: tuple[list[float], list[float]] | None = None,
) -> CaseComparison:
    """Compare one case present in both runs from its per-process means (J per sample)
    on each side; `windows`: each side's per-window values, for the smallest detectable
    change where a side has a single process (default: the values given)."""
    win_a, win_b = windows if windows is not None else (a, b)
    m_a, s_a = mean_std(a)
    m_b, s_b = mean_std(b)
    notes: list[str] = []
    ratio = m_b / m_a if len(a) and len(b) and m_a > 0 else math.nan
    if not a or not b:
        notes.append(f"no usable window in {'A' if not a else 'B'}")
    elif m_a <= 0:
        notes.append("mean energy in A is not positive: no ratio")
    tested = len(a) >= 2 and len(b) >= 2
    ci = ratio_ci95_log_delta(a, b) if tested else None
    p = welch_p_value(a, b) if tested else None
    detectable = None
    if a and b and not tested:
        detectable = smallest_detectable_pct(win_a, win_b)
        sides = " and ".join(s for s, v in (("A", a), ("B", b)) if len(v) < 2)
        shown = f"±{detectable:.1f} %" if detectable is not None else "unknown (one window)"
        notes.append(
            f"one process in {sides}: its run-to-run variance is not sampled, so no p-value; "
            f"smallest detectable change {shown} (at least: from the windows of one run)"
        )
    elif tested and p is None:
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
        p_value_holm=p,  # one case on its own; compare_runs adjusts for every case
        note="; ".join(notes),
        windows_a=len(win_a),
        windows_b=len(win_b),
        smallest_detectable_pct=detectable,
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
        mean_a_j_per_sample=_none_if_nan(mean) if in_a else None,  # over windows
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
    unstable_a, unstable_b = _unstable(run_a), _unstable(run_b)

    def values(reps: dict[str, CaseRepetitions], case_id: str) -> list[float]:
        return process_means(reps[case_id]) if case_id in reps else []

    def windows(reps: dict[str, CaseRepetitions], case_id: str) -> list[float]:
        return reps[case_id].energy_j_per_sample if case_id in reps else []

    def source(reps: dict[str, CaseRepetitions], case_id: str) -> str:
        return combine_sources(reps[case_id].sources) if case_id in reps else ""

    def with_context(comparison: CaseComparison) -> CaseComparison:
        case_id = comparison.case_id
        notes = [comparison.note] if comparison.note else []
        for run, reps in (("A", reps_a), ("B", reps_b)):
            left_out = reps[case_id].unusable if case_id in reps else []
            if left_out:
                notes.append(f"{len(left_out)} unusable repetition(s) in {run} left out")
            rep = reps.get(case_id)
            if rep is not None and rep.all_disturbed:
                notes.append(f"every window in {run} was disturbed: its figure comes from them")
            elif rep is not None and rep.disturbed:
                notes.append(f"{len(rep.disturbed)} disturbed window(s) in {run} left out")
        src_a, src_b = source(reps_a, case_id), source(reps_b, case_id)
        if src_a and src_b and src_a != src_b:
            notes.append(
                f"A is {source_label(src_a)}, B is {source_label(src_b)}: the ratio holds "
                "figures obtained differently"
            )
        why_a, why_b = unstable_a.get(case_id, ""), unstable_b.get(case_id, "")
        notes += [f"unstable in {r}" for r, why in (("A", why_a), ("B", why_b)) if why]
        return replace(
            comparison,
            note="; ".join(notes),
            source_a=src_a,
            source_b=src_b,
            unstable_a=why_a,
            unstable_b=why_b,
        )

    both = [
        with_context(
            compare_cases(
                values(reps_a, c),
                values(reps_b, c),
                c,
                alpha,
                windows=(windows(reps_a, c), windows(reps_b, c)),
            )
        )
        for c in sorted(ids_a & ids_b)
    ]
    adjusted = holm_adjust([c.p_value for c in both])
    result = [
        replace(
            c,
            p_value_holm=p,
            significant=p is not None and p < alpha and not (c.unstable_a or c.unstable_b),
        )
        for c, p in zip(both, adjusted, strict=True)
    ]
    result += [_one_side(c, ONLY_A, values(reps_a, c)) for c in sorted(ids_a - ids_b)]
    result += [_one_side(c, ONLY_B, values(reps_b, c)) for c in sorted(ids_b - ids_a)]
    return result


def _unstable(run_dir: Path) -> dict[str, str]:
    """case_id -> why the run's cases.csv marks it unstable (stable cases left out)."""
    out = {}
    for row in read_rows(Path(run_dir) / "cases.csv"):
        reason = unstable_reason_of(row)
        if reason:
            out[row.get("case_id") or ""] = reason
    return out


def _record(run_dir: Path) -> dict[str, Any]:
    """The run's environment.json (the first one written), {} where it cannot be read."""
    try:
        data = json.loads((Path(run_dir) / "environment.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _suite_text(run_dir: Path) -> str | None:
    try:
        return (Path(run_dir) / "suite.toml").read_text()
    except OSError:
        return None


def run_differences(run_a: Path, run_b: Path) -> list[str]:
    """What makes two runs not alike, one line each: precision, probes, machine, suite."""
    env_a, env_b = _record(run_a), _record(run_b)

    def setting(env: dict[str, Any], key: str) -> Any:
        return (env.get("suite_settings") or {}).get(key)

    facts = {
        "precision": (setting(env_a, "precision"), setting(env_b, "precision")),
        "probes": (
            ", ".join(sorted(env_a.get("probes_used") or {})) or None,
            ", ".join(sorted(env_b.get("probes_used") or {})) or None,
        ),
        "machine": tuple(
            " / ".join(str(e.get(k)) for k in ("hostname", "cpu_model", "logical_cpus"))
            if e
            else None
            for e in (env_a, env_b)
        ),
    }
    out = [
        f"the runs differ in {what}: A {a}, B {b}"
        for what, (a, b) in facts.items()
        if a is not None and b is not None and a != b
    ]
    text_a, text_b = _suite_text(run_a), _suite_text(run_b)
    if text_a is not None and text_b is not None and text_a != text_b:
        out.append("the runs differ in suite: their suite.toml files are not the same")
    return out


@dataclass(frozen=True)
class VerdictPair:
    """One variant's comparison with dense in each of two runs: does the verdict hold?

    `a_in_b`: run A's ratio lies in run B's 95 % interval (and `b_in_a` the other way);
    `same_verdict`: both beyond noise in the same direction, or both not beyond noise."""

    case_id: str
    a: VsDense
    b: VsDense

    @property
    def a_in_b(self) -> bool:
        return self.b.ratio_ci95_low <= self.a.energy_ratio <= self.b.ratio_ci95_high

    @property
    def b_in_a(self) -> bool:
        return self.a.ratio_ci95_low <= self.b.energy_ratio <= self.a.ratio_ci95_high

    @staticmethod
    def _verdict(v: VsDense) -> int:
        """-1 saves beyond noise, +1 costs more beyond noise, 0 neither."""
        return (1 if v.energy_ratio > 1 else -1) if v.beyond_noise else 0

    @property
    def same_verdict(self) -> bool:
        return self._verdict(self.a) == self._verdict(self.b)


def _vs_dense_of(run_dir: Path) -> dict[str, VsDense]:
    reps, _ = load_run_repetitions(run_dir)
    return vs_dense_all(case_energies(read_rows(Path(run_dir) / "cases.csv"), reps))


def verdict_pairs(run_a: Path, run_b: Path) -> list[VerdictPair]:
    """Each variant compared with dense in both runs, in case order: whether each run's
    ratio lies in the other's interval and the verdicts agree (a claim "beyond noise"
    should survive a second run)."""
    vs_a, vs_b = _vs_dense_of(run_a), _vs_dense_of(run_b)
    return [VerdictPair(c, vs_a[c], vs_b[c]) for c in sorted(vs_a) if c in vs_b]
