"""cases.csv rows: what the repetitions of a case measured, its estimate and the error, CO2.

One builder for single-process and `ddp-training` cases alike: both hand in the totals
of their repetitions (`RepetitionTotal`) and the estimate of one step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.estimate.error import estimate_error_pct
from harness.estimate.names import DENSE_HW, SPARSE_IDEAL
from harness.measure.clock import utc_now_iso
from harness.measure.sources import combine_sources
from harness.rows.carbon import CarbonSettings
from harness.rows.case_energy import CaseEnergy
from harness.rows.columns import STATUS_OK, estimate_prefix
from harness.rows.measurements import RepetitionTotal
from harness.rows.preparation import preparation_columns
from harness.rows.stability import StabilityLimits, unstable_reason
from harness.rows.stats import (
    ALPHA,
    Summary,
    finite_values,
    mcnemar_exact_p,
    mean_std,
    summarize,
    wilson_ci95,
)
from harness.rows.vs_dense import VsDense, vs_dense_columns
from harness.spec.case import Case

if TYPE_CHECKING:  # torch-free at import: the CLI's summary reads the error definition
    from harness.estimate.model import ModelEstimate
    from harness.prepare.pipeline import PreparedModel


@dataclass(frozen=True)
class CaseFigures:
    """What the repetitions of one case measured (the inputs of its cases.csv row)."""

    energy: Summary  # J per sample
    dynamic: Summary  # J per sample above the idle baseline
    duration_s: float  # mean window
    latency_s: float  # mean seconds per step
    iterations: int  # steps per window (per rank)
    energy_j: float  # mean total energy of a window
    source: str  # what the measured total is made of
    samples_per_step: int  # over all ranks
    world_size: int = 1
    idle_power_w: float = math.nan  # idle baseline of the counted domains; NaN without one
    other_cpu_pct_max: float | None = None  # the busiest window's other_cpu_pct
    values_j_per_sample: tuple[float, ...] = ()  # energy per sample of each repetition
    rounds: tuple[str, ...] = ()  # the round of each repetition (empty without rounds)
    windows: int = 0  # repetitions measured, the disturbed ones included
    disturbed: int = 0  # repetitions left out as disturbed (and measured again)
    processes: int = 1  # worker processes the repetitions ran in


def case_figures(
    totals: list[RepetitionTotal],
    samples_per_step: int,
    world_size: int = 1,
    *,
    rounds: tuple[str, ...] = (),
    windows: int = 0,
    disturbed: int = 0,
    processes: int = 1,
) -> CaseFigures:
    """The figures of a case from the totals of its usable repetitions (at least one);
    `rounds`: the round of each; `windows`: how many were measured (default: the
    totals), `disturbed`: how many of them were disturbed."""
    per_sample = [t.energy_j / t.samples for t in totals]
    return CaseFigures(
        energy=summarize(per_sample),
        dynamic=summarize([t.dynamic_energy_j / t.samples for t in totals]),
        duration_s=summarize([t.duration_s for t in totals]).mean,
        latency_s=summarize([t.duration_s / t.iterations for t in totals]).mean,
        iterations=totals[-1].iterations,
        energy_j=summarize([t.energy_j for t in totals]).mean,
        source=combine_sources(s for t in totals for s in t.sources),
        samples_per_step=samples_per_step,
        world_size=world_size,
        idle_power_w=mean_std(finite_values([t.idle_power_w for t in totals]))[0],
        other_cpu_pct_max=max(
            (t.other_cpu_pct for t in totals if t.other_cpu_pct is not None), default=None
        ),
        values_j_per_sample=tuple(per_sample),
        rounds=rounds,
        windows=windows or len(totals),
        disturbed=disturbed,
        processes=processes,
    )


@dataclass(frozen=True)
class AccuracyFigures:
    """A case's test accuracy as counted, and against dense on the same test samples.

    `only_dense_correct`, `only_case_correct`: the discordant samples of McNemar's test
    (None for dense itself, or where dense is unknown). `reference`: what dense's
    accuracy is (how it was trained), said beside the comparison.
    """

    test_samples: int
    correct: int
    only_dense_correct: int | None = None
    only_case_correct: int | None = None
    reference: str = ""

    def columns(self) -> dict[str, Any]:
        low, high = wilson_ci95(self.correct, self.test_samples)
        p = (
            None
            if self.only_dense_correct is None or self.only_case_correct is None
            else mcnemar_exact_p(self.only_dense_correct, self.only_case_correct)
        )
        return {
            "test_samples": self.test_samples,
            "accuracy_ci95_low": low,
            "accuracy_ci95_high": high,
            "accuracy_vs_dense_p_mcnemar": p,
            "accuracy_vs_dense_beyond_noise": None if p is None else p < ALPHA,
            "accuracy_reference": self.reference,
        }


def params_text(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """`sparsity=0.9;fine_tune_epochs=3`: variant parameters in one cell."""
    items = params.items() if isinstance(params, Mapping) else params
    return ";".join(f"{k}={v}" for k, v in sorted(items))


def estimate_columns(est: ModelEstimate, steps: int) -> dict[str, Any]:
    """Estimate per sample per accounting, and the counts of `steps` steps (one window)."""
    step = est.energy[DENSE_HW]
    row: dict[str, Any] = {
        "estimate_profile": est.profile.name,
        "estimate_static_power_w": None if step.static is None else step.static.joules_per_unit,
        "estimate_static_source": "" if step.static is None else step.static.source,
        "estimate_power_capped": step.power_cap is not None and step.power_cap.capped,
    }
    for acc in (DENSE_HW, SPARSE_IDEAL):
        per_sample = est.per_sample(acc)
        prefix = estimate_prefix(acc)
        row[prefix + "energy_j_per_sample"] = per_sample.energy_j
        for part, value in per_sample.breakdown_j.items():
            row[f"{prefix}{part}_j"] = value
    # counts of one measured window, for `calibrate --from` (nonzero_params comes from the
    # prepared model's report; the sparse-ideal estimate is in its own est_ columns)
    skip = ("nonzero_params", "estimated_sparse_ideal_energy_j")
    row.update({k: v for k, v in est.case_columns(steps).items() if k not in skip})
    counts = est.counts_per_sample(DENSE_HW)
    row["flops_per_sample"] = counts.flops
    row["bytes_per_sample"] = counts.bytes
    return row


def measured_case_row(
    run_id: str,
    case: Case,
    prepared: PreparedModel,
    est: ModelEstimate,
    fig: CaseFigures,
    carbon: CarbonSettings,
    *,
    started: str,
    limits: StabilityLimits,
    vs: VsDense | None = None,
    accuracy: AccuracyFigures | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The cases.csv row of a measured case: figures, the estimate, its error, CO2,
    whether the figure is stable (`limits`), the rounds behind it, its accuracy with
    its interval, and `vs`, the case against the dense case of its group
    (`harness.rows.vs_dense`; empty columns without one)."""
    # counts of one window of the whole job: every rank runs `iterations` steps
    row = estimate_columns(est, fig.iterations * fig.world_size)
    energy, dynamic = fig.energy, fig.dynamic
    error_pct = estimate_error_pct(
        row[estimate_prefix(DENSE_HW) + "energy_j_per_sample"], energy.mean
    )
    report = prepared.report
    row.update(
        {
            **case.columns(run_id),
            "dataset": case.dataset,
            "variant_params": params_text(prepared.params),
            "model_options": params_text(case.model_options),
            "status": STATUS_OK,
            "error": "",
            "accuracy": prepared.accuracy,
            "params": report.total_params,
            "nonzero_params": report.nonzero_params,
            "sparsity": report.sparsity,
            "params_removed": report.params_removed,
            "dense_bytes": report.dense_bytes,
            "nonzero_bytes": report.nonzero_bytes,
            "latency_s_per_batch": fig.latency_s,
            "throughput_samples_per_s": fig.samples_per_step / fig.latency_s,
            "measured_source": fig.source,
            "n": energy.n,
            "energy_j_per_sample_mean": energy.mean,
            "energy_j_per_sample_std": energy.std,
            "energy_j_per_sample_ci95_low": energy.ci95_low,
            "energy_j_per_sample_ci95_high": energy.ci95_high,
            "dynamic_energy_j_per_sample_mean": dynamic.mean,
            "estimate_error_pct": error_pct,
            "iterations": fig.iterations,
            "duration_s": fig.duration_s,
            "energy_j": fig.energy_j,
            "energy_source": fig.source,
            "co2_g_per_1000_samples": carbon.co2_g(energy.mean * 1000),
            "carbon_intensity_g_per_kwh": carbon.intensity_g_per_kwh,
            "pue": carbon.pue,
            "started_utc": started,
            "finished_utc": utc_now_iso(),
            **stability_columns(fig, limits),
            "windows_measured": fig.windows or energy.n,
            "windows_disturbed": fig.disturbed,
            "processes": fig.processes,
            **(accuracy.columns() if accuracy is not None else {}),
            **preparation_columns(prepared),
            **(extra or {}),
        }
    )
    row.update(vs_dense_columns(vs))
    return row


def figures_energy(
    case: Case, fig: CaseFigures, accuracy: float, limits: StabilityLimits
) -> CaseEnergy:
    """The case's figures as the comparisons with dense need them (`harness.rows.vs_dense`)."""
    return CaseEnergy(
        case_id=case.case_id,
        group=case.group,
        variant=case.variant_label,
        values_j_per_sample=tuple(finite_values(fig.values_j_per_sample)),
        accuracy=accuracy,
        source=fig.source,
        unstable_reason=stability_columns(fig, limits)["unstable_reason"],
        rounds=fig.rounds,
        windows=fig.windows,
        disturbed=fig.disturbed,
    )


def stability_columns(fig: CaseFigures, limits: StabilityLimits) -> dict[str, Any]:
    """`energy_j_per_sample_cv_pct`, `other_cpu_pct_max`, `stable`, `unstable_reason`."""
    cv_pct = fig.energy.cv_pct
    reason = unstable_reason(fig.energy.n, cv_pct, fig.other_cpu_pct_max, limits)
    return {
        "energy_j_per_sample_cv_pct": cv_pct,
        "other_cpu_pct_max": fig.other_cpu_pct_max,
        "stable": not reason,
        "unstable_reason": reason,
    }


def failed_case_row(
    run_id: str, case: Case, status: str, error: str, started: str
) -> dict[str, Any]:
    """The cases.csv row of a case that was skipped or failed, with its reason."""
    return {
        **case.columns(run_id),
        "dataset": case.dataset,
        "variant_params": params_text(case.variant_params),
        "model_options": params_text(case.model_options),
        "status": status,
        "error": error,
        "n": 0,
        "started_utc": started,
        "finished_utc": utc_now_iso(),
    }
