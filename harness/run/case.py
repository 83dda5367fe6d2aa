"""What every case of a run shares, and one case's parts: its model (prepared, cached),
its estimate, its cases.csv row, its failure.

Single-process cases are measured in rounds with the other cases of their group
(`harness.run.group`); `ddp-training` cases each as a torchrun job
(`harness.run.ddp.case`). Both build their rows here.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import error_text, is_out_of_memory
from harness.estimate.auto import AutoProfile, auto_profile
from harness.estimate.model import ModelEstimate, estimate_model
from harness.estimate.profiles import StaticPower
from harness.measure.meter import EnergyMeter
from harness.measure.sources import source_label
from harness.prepare.cache import ModelCache
from harness.prepare.pipeline import PreparedModel, prepare_model
from harness.rows.carbon import CarbonSettings
from harness.rows.case_energy import dense_in_run
from harness.rows.cases import (
    AccuracyFigures,
    CaseFigures,
    failed_case_row,
    figures_energy,
    measured_case_row,
)
from harness.rows.columns import STATUS_FAILED
from harness.rows.csvfile import CsvAppender
from harness.rows.stability import StabilityLimits
from harness.rows.vs_dense import VsDense, compare_with_dense
from harness.run.simulation import simulation_columns
from harness.spec.case import Case
from harness.spec.catalog import DatasetSplits, load_dataset
from harness.spec.suite import Suite
from harness.spec.variants import DENSE, VARIANTS


class CaseProgress:
    """What a case tells the run's progress display (by default, nothing)."""

    def start_case(self, case: Case) -> None:
        """The case's model is being prepared."""

    def phase(self, text: str) -> None:
        """What the case is doing now (training, compressing, ...)."""

    def epoch_done(self, epoch: int, mean_loss: float) -> None:
        """An epoch of training or fine-tuning has ended."""

    def measuring(self) -> None:
        """The case's model is ready: its windows begin."""

    def window(self, case: Case, round_no: int) -> None:
        """A window of `case` in round `round_no` begins."""

    def window_done(self, count: int = 1) -> None:
        """`count` windows have ended."""

    def add_windows(self, count: int) -> None:
        """`count` more windows are planned (a round measured again)."""


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
    """The case's model through the five-step pipeline (in `cache`, else the run's cache),
    each step that runs measured by the run's meter; one line for each model the first
    time a case of the run uses it."""
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
        model_options=case.factory_options,
        meter=ctx.meter,
    )
    if prepared.cache_key not in ctx.prepared:
        ctx.prepared.add(prepared.cache_key)
        how = "from cache" if prepared.from_cache else f"in {time.monotonic() - started:.1f} s"
        made = prepared.preparation
        if made is not None:
            how += f", {made.energy_j:.4g} J {source_label(made.source)}"
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


def case_row_of(
    ctx: CaseContext,
    case: Case,
    prepared: PreparedModel,
    inputs: Any,
    fig: CaseFigures,
    started: str,
    vs: VsDense | None,
    accuracy: AccuracyFigures | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cases.csv row of a measured case with its estimate and its comparison with
    dense (`vs`, None for dense itself or without one)."""
    est, note = estimate_case(ctx, case, prepared, inputs, fig)
    row = measured_case_row(
        ctx.run_id,
        case,
        prepared,
        est,
        fig,
        ctx.carbon,
        started=started,
        limits=StabilityLimits.of(ctx.suite.settings),
        vs=vs,
        accuracy=accuracy,
        extra={"estimate_profile_note": note, **(extra or {})},
    )
    cache_root = ctx.cache.root if ctx.cache is not None else None
    simulate = ctx.suite.settings.simulate
    row.update(
        simulation_columns(
            simulate, case.mode, prepared.model, inputs, row, cache_root, ctx.progress.phase
        )
    )
    return row


def case_row(
    ctx: CaseContext,
    case: Case,
    prepared: PreparedModel,
    inputs: Any,
    fig: CaseFigures,
    started: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cases.csv row of a case measured on its own (a `ddp-training` case), against
    the dense case of its group as measured in this run directory (if it is there yet)."""
    vs = None
    if case.variant != DENSE:
        dense = dense_in_run(ctx.measurements.path.parent, case.group)
        if dense is not None:
            limits = StabilityLimits.of(ctx.suite.settings)
            own = figures_energy(case, fig, prepared.accuracy, limits)
            vs = compare_with_dense(own, dense)
    return case_row_of(ctx, case, prepared, inputs, fig, started, vs, extra=extra)


def free_memory() -> None:
    """Give memory back after a case ran out of it, so the next case can run."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def failure_row(run_id: str, case: Case, exc: BaseException, started: str) -> dict[str, Any]:
    """The cases.csv row of a case that raised (out of memory said so, memory given back)."""
    reason = error_text(exc)
    if is_out_of_memory(exc):
        reason = f"out of memory: {reason}"
        free_memory()
    return failed_case_row(run_id, case, STATUS_FAILED, reason, started)
