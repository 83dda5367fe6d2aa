"""Measure one suite case: prepare (cached), warm up, repeat windows, estimate, summarise.

Each repetition's rows (one per domain) are appended to measurements.csv as soon as the
window ends; the case row is returned for cases.csv.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.data import DatasetSplits, load_dataset
from harness.cache import ModelCache
from harness.carbon import CarbonSettings
from harness.compress import VARIANTS, VariantUnsupported, prepare_model
from harness.errors import EnergyHarnessError
from harness.estimate import estimate_model
from harness.estimate.accounting import DENSE_HW, SPARSE_IDEAL
from harness.meter import EnergyMeter, utc_now_iso
from harness.peer import CodecarbonPeer
from harness.results import CsvAppender
from harness.stats import Summary, summarize
from harness.suite import Case, Suite
from harness.training import TrainConfig
from harness.workloads import (
    calibrate_iterations,
    inference_step,
    make_batch,
    measure_workload,
    training_step,
)

PROFILE_BY_GPU = (("H200", "h200-class"), ("H100", "h100-class"), ("A100", "a100-class"))


def auto_profile(device: str) -> str:
    """The bundled estimate profile closest to `device` (a datasheet-class profile)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
        for key, profile in PROFILE_BY_GPU:
            if key in name:
                return profile
        if "Orin" in name:
            return "jetson-orin-class"
        return "h100-class"
    return "x86-server-cpu"


@dataclass
class CaseContext:
    """What every case of a run shares."""

    run_id: str
    suite: Suite
    meter: EnergyMeter
    measurements: CsvAppender
    carbon: CarbonSettings
    cache: ModelCache | None
    peer: str | None = None
    log: Callable[[str], None] = lambda message: None
    datasets: dict[tuple[str, str], DatasetSplits] = field(default_factory=dict)

    def dataset(self, case: Case) -> DatasetSplits:
        key = (case.dataset, case.model)
        if key not in self.datasets:
            s = self.suite.settings
            self.datasets[key] = load_dataset(
                case.dataset,
                data_root=s["data_root"],
                download=s["download"],
                model=case.model,
                seed=s["seed"],
            )
        return self.datasets[key]


def _variant_params(case: Case, suite: Suite) -> dict[str, Any]:
    params = dict(case.variant_params)
    defaults = VARIANTS[case.variant].defaults
    if "fine_tune_epochs" in defaults and "fine_tune_epochs" not in params:
        params["fine_tune_epochs"] = suite.settings["finetune_epochs"]
    return params


def _estimate_columns(est: Any, iterations: int) -> dict[str, Any]:
    row: dict[str, Any] = {"estimate_profile": est.profile.name}
    for acc in (DENSE_HW, SPARSE_IDEAL):
        per_sample = est.per_sample(acc)
        prefix = f"est_{acc.replace('-', '_')}_"
        row[prefix + "energy_j_per_sample"] = per_sample.energy_j
        for part, value in per_sample.breakdown_j.items():
            row[f"{prefix}{part}_j"] = value
    # counts of one measured window, for `calibrate --from` (nonzero_params comes from the
    # prepared model's report; the sparse-ideal estimate is in its own est_ columns)
    skip = ("nonzero_params", "estimated_sparse_ideal_energy_j")
    row.update({k: v for k, v in est.case_columns(iterations).items() if k not in skip})
    counts = est.counts_per_sample(DENSE_HW)
    row["flops_per_sample"] = counts.flops
    row["bytes_per_sample"] = counts.bytes
    return row


class DeviceUnavailable(EnergyHarnessError):
    """The case's device is not on this machine: the case is skipped, not failed."""


def check_device(device: str) -> None:
    """Raise DeviceUnavailable if `device` (cpu, cuda, cuda:N) cannot run here."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"device {device!r}: torch sees no CUDA GPU here (no driver, a CPU-only torch, or "
            "CUDA_VISIBLE_DEVICES hides them); run the suite on a GPU machine or set "
            'devices = ["cpu"]'
        )
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        raise DeviceUnavailable(
            f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
        )


def run_case(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """Measure one case and return its cases.csv row. Raises on failure (the caller records)."""
    check_device(case.device)
    if case.mode == "ddp-training":
        from harness.distributed import run_ddp_case  # it imports this module

        return run_ddp_case(ctx, case)
    s = ctx.suite.settings
    started = utc_now_iso()
    data = ctx.dataset(case)
    prepared = prepare_model(
        case.model,
        data,
        case.variant,
        _variant_params(case, ctx.suite),
        seed=s["seed"],
        train_config=TrainConfig(epochs=s["train_epochs"]),
        device=case.device,
        cache=ctx.cache,
        log=ctx.log,
    )
    split = "train" if case.mode == "training" else "test"
    inputs, labels = make_batch(
        case.batch_size,
        data=data,
        split=split,
        device=prepared.device,
        input_dtype=prepared.input_dtype,
        seed=s["seed"],
    )
    if case.mode == "training":
        if prepared.variant == "int8-dynamic":
            raise VariantUnsupported(
                case.variant, "dynamic int8 layers have no backward pass: int8 runs inference only"
            )
        step = training_step(prepared.model, inputs, labels, variant=case.variant)
    else:
        step = inference_step(prepared.model, inputs)
    min_window_s = max(s["min_window_s"], ctx.meter.min_window_s)
    iterations = calibrate_iterations(step, min_window_s, warmup_iterations=s["warmup_iterations"])
    per_sample, dynamic_per_sample, durations, energies, latencies = [], [], [], [], []
    samples = 0
    source = ""
    peer = CodecarbonPeer(ctx.carbon.country) if ctx.peer == "codecarbon" else None
    if peer is not None:
        peer.__enter__()
    try:
        for rep in range(s["repetitions"]):
            run = measure_workload(
                ctx.meter, f"{case.case_id}#{rep}", step, iterations, min_window_s=min_window_s
            )
            iterations = run.iterations  # a window that ended too soon was extended
            m = run.measurement
            samples = run.samples
            source = m.total_source
            ctx.measurements.append_many(
                {
                    **case.columns(ctx.run_id),
                    "node": 0,
                    "rank": 0,
                    "repetition": rep,
                    "probe": d.probe,
                    "domain": d.domain,
                    "source": d.source,
                    "in_total": d.in_total,
                    "start_utc": m.start_utc,
                    "duration_s": m.duration_s,
                    "iterations": run.iterations,
                    "samples": run.samples,
                    "energy_j": d.energy_j,
                    "idle_power_w": d.idle_power_w,
                    "dynamic_energy_j": d.dynamic_energy_j,
                    "energy_j_per_sample": None if d.energy_j is None else d.energy_j / samples,
                    "valid": d.energy_j is not None,
                    "note": d.invalid_reason or d.note,
                }
                for d in m.domains
            )
            per_sample.append(m.total_energy_j / run.samples)
            dynamic = m.dynamic_energy_j
            dynamic_per_sample.append(math.nan if dynamic is None else dynamic / run.samples)
            durations.append(m.duration_s)
            latencies.append(m.duration_s / run.iterations)
            energies.append(m.total_energy_j)
    finally:
        if peer is not None:
            peer.__exit__(None, None, None)
    peer_j = None
    if peer is not None and peer.energy_j is not None:
        peer_j = peer.energy_j / (samples * s["repetitions"])
    figures = CaseFigures(
        energy=summarize(per_sample),
        dynamic=summarize(dynamic_per_sample),
        duration_s=summarize(durations).mean,
        latency_s=summarize(latencies).mean,
        iterations=iterations,
        energy_j=summarize(energies).mean,
        source=source,
        samples_per_step=case.batch_size,
    )
    return measured_case_row(
        ctx, case, prepared, inputs, figures, started, {"peer_energy_j_per_sample": peer_j}
    )


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


def measured_case_row(
    ctx: CaseContext,
    case: Case,
    prepared: Any,
    inputs: Any,
    fig: CaseFigures,
    started: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cases.csv row of a measured case: figures, the estimate, its error, CO2."""
    s = ctx.suite.settings
    profile = s["estimate_profile"]
    est = estimate_model(
        prepared.model,
        inputs,
        auto_profile(case.device) if profile == "auto" else profile,
        mode="inference" if case.mode == "inference" else "training",
        duration_s=fig.latency_s,
        world_size=fig.world_size,
    )
    # counts of one window of the whole job: every rank runs `iterations` steps
    row = _estimate_columns(est, fig.iterations * fig.world_size)
    est_j = row["est_dense_hw_energy_j_per_sample"]
    energy, dynamic = fig.energy, fig.dynamic
    if ctx.meter.idle_power_w and math.isfinite(dynamic.mean):
        # like with like: the estimate's dynamic part vs measured energy above idle
        est_dynamic_j = est_j - row.get("est_dense_hw_static_j", 0.0)
        error_pct = (est_dynamic_j - dynamic.mean) / dynamic.mean * 100 if dynamic.mean else None
    else:
        error_pct = (est_j - energy.mean) / energy.mean * 100 if energy.mean else None
    report = prepared.report
    row.update(
        {
            **case.columns(ctx.run_id),
            "dataset": case.dataset,
            "variant_params": ";".join(f"{k}={v}" for k, v in sorted(prepared.params.items())),
            "status": "ok",
            "error": "",
            "accuracy": prepared.accuracy,
            "params": report.total_params,
            "nonzero_params": report.nonzero_params,
            "sparsity": report.sparsity,
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
            "co2_g_per_1000_samples": ctx.carbon.co2_g(energy.mean * 1000),
            "carbon_intensity_g_per_kwh": ctx.carbon.intensity_g_per_kwh,
            "pue": ctx.carbon.pue,
            "started_utc": started,
            "finished_utc": utc_now_iso(),
            **(extra or {}),
        }
    )
    return row


def failed_case_row(
    run_id: str, case: Case, status: str, error: str, started: str
) -> dict[str, Any]:
    """The cases.csv row of a case that was skipped or failed, with its reason."""
    return {
        **case.columns(run_id),
        "dataset": case.dataset,
        "variant_params": ";".join(f"{k}={v}" for k, v in case.variant_params),
        "status": status,
        "error": error,
        "n": 0,
        "started_utc": started,
        "finished_utc": utc_now_iso(),
    }


def cache_for(root: Path | None, enabled: bool) -> ModelCache | None:
    """The prepared-model cache (None when disabled)."""
    return ModelCache(root) if enabled else None
