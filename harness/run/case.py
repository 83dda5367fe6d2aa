"""Measure one single-process case: prepare (cached), warm up, repeat windows, estimate.

Each repetition's rows (one per domain) are appended to measurements.csv as soon as the
window ends; the case row is returned for cases.csv. `ddp-training` cases go to
`harness.run.ddp.case`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.estimate.auto import AutoProfile, auto_profile
from harness.estimate.model import ModelEstimate, estimate_model
from harness.estimate.profiles import StaticPower
from harness.measure.clock import utc_now_iso
from harness.measure.meter import EnergyMeter
from harness.measure.sources import source_label
from harness.prepare.cache import ModelCache
from harness.prepare.pipeline import PreparedModel, prepare_model
from harness.rows.carbon import CarbonSettings
from harness.rows.cases import CaseFigures, case_figures, measured_case_row
from harness.rows.csvfile import CsvAppender
from harness.rows.measurements import measurement_rows, repetition_total, window_record
from harness.rows.stability import StabilityLimits
from harness.rows.vs_dense import dense_in_run, group_key
from harness.run.peer import CodecarbonPeer
from harness.spec.case import Case
from harness.spec.catalog import DatasetSplits, load_dataset
from harness.spec.suite import Suite
from harness.spec.variants import DENSE, VARIANTS, check_trainable
from harness.workloads.batches import make_batch
from harness.workloads.steps import inference_step, training_step
from harness.workloads.windows import calibrate_iterations, measure_workload


class CaseProgress:
    """What a case tells the run's progress display (by default, nothing)."""

    def phase(self, text: str) -> None:
        """What the case is doing now (training, compressing, ...)."""

    def epoch_done(self, epoch: int, mean_loss: float) -> None:
        """An epoch of training or fine-tuning has ended."""

    def measuring(self) -> None:
        """The case's model is ready: its windows begin."""


@dataclass
class CaseContext:
    """What every case of a run shares. `log` prints a line that stays; `progress` hears
    what a case is doing; `prepared` holds the cache keys of the models said so far."""

    run_id: str
    suite: Suite
    meter: EnergyMeter
    measurements: CsvAppender
    carbon: CarbonSettings
    cache: ModelCache | None
    peer: str | None = None
    log: Callable[[str], None] = lambda message: None
    progress: CaseProgress = field(default_factory=CaseProgress)
    prepared: set[str] = field(default_factory=set)
    datasets: dict[tuple[str, str, tuple[int, ...] | None], DatasetSplits] = field(
        default_factory=dict
    )
    auto_profiles: dict[str, AutoProfile] = field(default_factory=dict)

    def dataset(self, case: Case) -> DatasetSplits:
        """The case's dataset, loaded once per run."""
        key = (case.dataset, case.model, case.input_shape)
        if key not in self.datasets:
            s = self.suite.settings
            shape = {} if case.input_shape is None else {"input_shape": case.input_shape}
            self.datasets[key] = load_dataset(
                case.dataset,
                data_root=s.data_root,
                download=s.download,
                model=case.model,
                seed=s.seed,
                **shape,
            )
        return self.datasets[key]

    @property
    def min_window_s(self) -> float:
        """The suite's minimum window, at least the counters' update period."""
        return max(self.suite.settings.min_window_s, self.meter.min_window_s)


def variant_params(case: Case, suite: Suite) -> dict[str, Any]:
    """The case's variant parameters, with the suite's fine-tuning epochs as default."""
    params = dict(case.variant_params)
    defaults = VARIANTS[case.variant].defaults
    if "fine_tune_epochs" in defaults and "fine_tune_epochs" not in params:
        params["fine_tune_epochs"] = suite.settings.finetune_epochs
    return params


def prepare_case(
    ctx: CaseContext, case: Case, data: DatasetSplits, cache: ModelCache | None = None
) -> PreparedModel:
    """The case's model through the five-step pipeline (in `cache`, else the run's cache);
    one line for each model the first time a case of the run uses it."""
    s = ctx.suite.settings
    started = time.monotonic()
    prepared = prepare_model(
        case.model,
        data,
        case.variant,
        variant_params(case, ctx.suite),
        seed=s.seed,
        train_config=ctx.suite.train_config(),
        device=case.device,
        cache=cache or ctx.cache,
        log=ctx.progress.phase,
        on_epoch=ctx.progress.epoch_done,
    )
    if prepared.cache_key not in ctx.prepared:
        ctx.prepared.add(prepared.cache_key)
        how = "from cache" if prepared.from_cache else f"in {time.monotonic() - started:.1f} s"
        ctx.log(f"model {case.model} {case.variant_label} ready ({how}): {model_facts(prepared)}")
    return prepared


def model_facts(prepared: PreparedModel) -> str:
    """`test accuracy 97.78 %, 15,738 of 61,706 parameters nonzero (74.5 % removed)`."""
    report = prepared.report
    return (
        f"test accuracy {prepared.accuracy * 100:.2f} %, {report.nonzero_params:,} of "
        f"{report.reference_params:,} parameters nonzero ({report.params_removed * 100:.1f} % "
        "removed)"
    )


def case_profile(ctx: CaseContext, case: Case) -> AutoProfile | str:
    """The suite's estimate profile, or for `auto` the one that fits the case's device
    (chosen once per device per run, and said in the log)."""
    name = ctx.suite.settings.estimate_profile
    if name != "auto":
        return name
    if case.device not in ctx.auto_profiles:
        ctx.auto_profiles[case.device] = chosen = auto_profile(case.device)
        ctx.log(f"estimate profile for {case.device}: {chosen.note}")
    return ctx.auto_profiles[case.device]


def idle_static_power(ctx: CaseContext, fig: CaseFigures) -> StaticPower | None:
    """The run's measured idle power as the estimate's static power (per rank), or None
    without an idle baseline."""
    if not ctx.meter.idle_power_w or not math.isfinite(fig.idle_power_w):
        return None
    ranks = f" / {fig.world_size} ranks" if fig.world_size > 1 else ""
    return StaticPower(
        fig.idle_power_w / fig.world_size,
        f"idle baseline of this run: {fig.idle_power_w:.4g} W{ranks}, the idle power of the "
        f"domains the measured total adds ({source_label(fig.source)})",
    )


def estimate_case(
    ctx: CaseContext, case: Case, prepared: PreparedModel, inputs: Any, fig: CaseFigures
) -> tuple[ModelEstimate, str]:
    """The analytic estimate of one step at the case's precision, with the measured step
    time and (with an idle baseline) the measured idle power for the static part; and the
    note of an `auto` profile ("" otherwise)."""
    chosen = case_profile(ctx, case)
    profile, note = (
        (chosen.profile, chosen.note) if isinstance(chosen, AutoProfile) else (chosen, "")
    )
    est = estimate_model(
        prepared.model,
        inputs,
        profile,
        mode="inference" if case.mode == "inference" else "training",
        duration_s=fig.latency_s,
        world_size=fig.world_size,
        precision=case.precision,
        static=idle_static_power(ctx, fig),
    )
    return est, note


def case_row(
    ctx: CaseContext,
    case: Case,
    prepared: PreparedModel,
    inputs: Any,
    fig: CaseFigures,
    started: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cases.csv row of a measured case (single-process or distributed), with the
    dense case of its group as measured in this run directory (if it is there yet)."""
    est, note = estimate_case(ctx, case, prepared, inputs, fig)
    dense = None
    if case.variant != DENSE:
        group = group_key({**case.columns(ctx.run_id), "dataset": case.dataset})
        dense = dense_in_run(ctx.measurements.path.parent, group)
    return measured_case_row(
        ctx.run_id,
        case,
        prepared,
        est,
        fig,
        ctx.carbon,
        started=started,
        limits=StabilityLimits.of(ctx.suite.settings),
        dense=dense,
        extra={"estimate_profile_note": note, **(extra or {})},
    )


def run_case(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """Measure one single-process case and return its cases.csv row. Raises on failure."""
    s = ctx.suite.settings
    started = utc_now_iso()
    data = ctx.dataset(case)
    prepared = prepare_case(ctx, case, data)
    split = "train" if case.mode == "training" else "test"
    inputs, labels = make_batch(
        case.batch_size,
        data=data,
        split=split,
        device=prepared.device,
        input_dtype=prepared.input_dtype,
        seed=s.seed,
    )
    if case.mode == "training":
        check_trainable(prepared.variant)
        step = training_step(
            prepared.model, inputs, labels, variant=case.variant, precision=case.precision
        )
    else:
        step = inference_step(prepared.model, inputs, case.precision)
    ctx.progress.measuring()
    iterations = calibrate_iterations(step, ctx.min_window_s, warmup_iterations=s.warmup_iterations)
    totals = []
    peer = CodecarbonPeer(ctx.carbon.country) if ctx.peer == "codecarbon" else None
    with peer or contextlib.nullcontext():
        for rep in range(s.repetitions):
            run = measure_workload(
                ctx.meter, f"{case.case_id}#{rep}", step, iterations, min_window_s=ctx.min_window_s
            )
            iterations = run.iterations  # a window that ended too soon was extended
            record = window_record(run.measurement, run.iterations, run.samples)
            ctx.measurements.append_many(measurement_rows(ctx.run_id, case, rep, [record]))
            totals.append(repetition_total([record]))
    peer_j = None
    if peer is not None and peer.energy_j is not None:
        peer_j = peer.energy_j / (totals[-1].samples * s.repetitions)
    fig = case_figures(totals, case.batch_size)
    return case_row(ctx, case, prepared, inputs, fig, started, {"peer_energy_j_per_sample": peer_j})
