"""Validate the NVML path on a real GPU: `python -m benchmarks.gpu_check [--out FILE] [--quick]`.

Six steps (issue 7), each printed as it runs and written to one JSON file (default
`results/validation/gpu_check-<UTC time>.json`; its fields: results/validation/README.md):

1. probes: what `energy-harness probes` lists; the nvml probe is available and every
   visible GPU has the total-energy counter.
2. idle: idle power per GPU over 10 s from the energy counter (through the meter), and
   the counter's observed update period: the smallest time between two changes of the
   counter polled at about 1 kHz for 3 s (median and largest are printed too).
3. counter vs instant power: a 15 s bf16 matrix-product loop on cuda:0; energy from the
   total-energy counter vs the integral of instantaneous power sampled at 50 Hz through
   `nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)` (else `nvmlDeviceGetPowerUsage`,
   and the JSON says so) over the same window. Passes when they agree within 5 %.
4. overhead: cost of one begin+end window pair per available probe, in microseconds
   (`benchmarks.overhead.window_pair_us`).
5. gpu suite subset: resnet18, batch 256, inference, dense vs structured vs 2:4 vs
   magnitude-90 % through `run_suite` with probes nvml (+ rapl where readable), reduced
   repetitions and windows: measured and estimated joules per sample, and the error.
6. calibrate: the small calibration microbenchmarks on the GPU, a fit, and the
   leave-one-out error of the step-5 cases.

Exit status: 1 if a check failed (or a step raised), else 0. Without an NVIDIA GPU/NVML
every GPU step (2, 3, 5, 6; the NVML part of 1 and 4) prints "skipped: no NVIDIA
GPU/NVML on this machine: <why>" and is written with status "skipped"; skips are not
failures, so such a run exits 0. `--quick` shortens every step (seconds, not minutes).

Runtime on one H200, estimated (not yet run there): about 3 minutes, under 8 (idle 10 s
+ polling 3 s, bf16 loop 2 + 15 s, overhead a few seconds, suite 1-2 min, calibration
about 20 s). `--deadline-s` (default 450) starts no step after that time and marks the
steps not started as failed.

On the lent GPU machine (no .venv there), prepare here with
`benchmarks/gpu_check.sh prepare`, then call the device tool's run with
command `bash benchmarks/gpu_check.sh device`, carry [".whl"], timeout_s 420
(see that script). Or `make gpu-check` on a lab machine with a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
NO_GPU = "no NVIDIA GPU/NVML on this machine"
RATIO_TOLERANCE = 0.05  # step 3: counter and integrated power agree within 5 %
MIN_SAMPLE_HZ = 20.0  # step 3: instant power sampled at least this often
SCHEMA_VERSION = 1

# Step 5: the resnet18 / batch 256 / inference part of the bundled `gpu` suite, with
# fewer repetitions and shorter windows. Placeholders: repetitions, windows, probes.
SUITE_TEXT = """\
[suite]
name = "gpu-check"
description = "gpu_check step 5: resnet18 at batch 256, inference, four variants"
dataset = "synthetic"
repetitions = {repetitions}
warmup_iterations = 5
min_window_s = {min_window_s}
idle_baseline_s = {idle_s}
timeline_hz = 0.0
seed = 0
train_epochs = 1
finetune_epochs = 0
batch_sizes = [256]
modes = ["inference"]
devices = ["cuda"]
probes = {probes}

[[models]]
name = "resnet18"
variants = [
    "dense",
    {{ name = "structured", ratio = 0.5 }},
    "semi-structured-2:4",
    {{ name = "magnitude", sparsity = 0.9 }},
]
"""


@dataclass(frozen=True)
class Budget:
    """How long each step measures (s) and how hard; `FULL` for a GPU, `QUICK` for tests."""

    idle_s: float
    poll_s: float
    poll_hz: float
    warmup_s: float
    load_s: float
    sample_hz: float
    matmul_n: int
    overhead_pairs: int
    suite_repetitions: int
    suite_min_window_s: float
    suite_idle_s: float
    calibrate_seconds: float
    calibrate_idle_s: float
    calibrate_rounds: int

    def step_budget_s(self, number: int) -> float:
        """Planned wall time of a step (s), for the record; steps 5-6 include preparation."""
        return {
            1: 10.0,
            2: self.idle_s + self.poll_s + 5.0,
            3: self.warmup_s + self.load_s + 10.0,
            4: 10.0,
            5: 150.0 if self.suite_repetitions > 1 else 60.0,
            6: 60.0 if self.calibrate_rounds > 1 else 20.0,
        }[number]


FULL = Budget(
    idle_s=10.0,
    poll_s=3.0,
    poll_hz=1000.0,
    warmup_s=2.0,
    load_s=15.0,
    sample_hz=50.0,
    matmul_n=8192,
    overhead_pairs=2000,
    suite_repetitions=3,
    suite_min_window_s=1.0,
    suite_idle_s=3.0,
    calibrate_seconds=2.0,
    calibrate_idle_s=2.0,
    calibrate_rounds=2,
)
QUICK = Budget(
    idle_s=1.0,
    poll_s=1.0,
    poll_hz=1000.0,
    warmup_s=0.5,
    load_s=2.0,
    sample_hz=50.0,
    matmul_n=4096,
    overhead_pairs=200,
    suite_repetitions=1,
    suite_min_window_s=0.5,
    suite_idle_s=1.0,
    calibrate_seconds=0.5,
    calibrate_idle_s=0.5,
    calibrate_rounds=1,
)


# --- records -------------------------------------------------------------------------


@dataclass
class Step:
    """One step's outcome: status, figures (units in their names), checks, notes."""

    number: int
    name: str
    title: str
    budget_s: float
    status: str = OK
    reason: str = ""
    duration_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        """Print one line tagged with the step."""
        print(f"[{self.number} {self.name}] {text}", flush=True)

    def check(self, name: str, passed: bool, detail: str) -> bool:
        """Record a pass/fail check; a failed one fails the step."""
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})
        self.say(f"check {'PASSED' if passed else 'FAILED'}: {name}: {detail}")
        if not passed:
            self.status = FAILED
        return passed

    def skip(self, reason: str) -> None:
        """Mark the step skipped (not a failure) and say why."""
        self.status, self.reason = SKIPPED, reason
        self.say(f"skipped: {reason}")

    def fail(self, reason: str) -> None:
        """Mark the step failed and say why."""
        self.status, self.reason = FAILED, reason
        self.say(f"FAILED: {reason}")

    def note(self, text: str) -> None:
        """A remark worth keeping next to the figures."""
        self.notes.append(text)
        self.say(f"note: {text}")


@dataclass
class Context:
    """What the steps find out and share."""

    budget: Budget
    nvml: Any = None  # the pynvml module, once NVML started
    no_gpu_reason: str = ""  # why there is no NVIDIA GPU/NVML here ("" if there is one)
    handle: Any = None  # NVML handle of gpu:0 (cuda:0), once step 1 passed
    gpu_domains: list[str] = field(default_factory=list)
    rapl_available: bool = False
    cuda_reason: str = ""  # why torch cannot run on the GPU ("" if it can)
    suite_cases: Any = None  # step 5's ok cases (pandas DataFrame), for step 6
    suite_probes: list[str] = field(default_factory=list)
    run_dir: Path | None = None

    def gpu_skip_reason(self, needs_cuda: bool = False) -> str:
        """Why a GPU step cannot run, or "" when it can."""
        if self.no_gpu_reason:
            return f"{NO_GPU}: {self.no_gpu_reason}"
        if self.handle is None:
            return "step 1 found no usable NVML energy counter (see its checks)"
        if needs_cuda and self.cuda_reason:
            return self.cuda_reason
        return ""


def finite(value: Any) -> Any:
    """A JSON-safe copy: NaN and infinities become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- NVML helpers (pynvml is imported lazily: this module imports without it) ----------


def nvml_presence() -> tuple[Any, str]:
    """(pynvml module, "") when NVML starts and sees a GPU, else (None, why not)."""
    try:
        import pynvml
    except ImportError:
        return None, "the NVML binding is not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None, f"NVML did not start ({_text(exc)})"
    try:
        count = pynvml.nvmlDeviceGetCount()
    except Exception as exc:
        return None, f"NVML could not count GPUs ({_text(exc)})"
    if count < 1:
        return None, "NVML sees no GPU"
    return pynvml, ""


def read_counter_mj(nvml: Any, handle: Any) -> tuple[float, int]:
    """(time.monotonic() at the middle of the read, total-energy counter in mJ)."""
    t_before = time.monotonic()
    value = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    return (t_before + time.monotonic()) / 2, value


def observe_update_period(
    nvml: Any, handle: Any, *, poll_s: float, poll_hz: float = 1000.0
) -> dict[str, Any]:
    """Poll the energy counter at `poll_hz` for `poll_s` seconds and time its changes.

    A change happened between the poll that saw it and the one before; its time is the
    middle of the two. `update_period_s` is the smallest interval between two
    consecutive changes whose polls were on time (at most 3 poll periods apart: a late
    poll would shorten the next interval), None when the counter changed fewer than
    twice. The first change only ends a partial interval. Resolution: one poll period.
    """
    period_s = 1.0 / poll_hz
    t_start, last = read_counter_mj(nvml, handle)
    changes: list[tuple[float, float]] = []  # (time of the change, width of its bracket)
    steps_mj: list[int] = []
    polls, next_t, t_previous = 1, t_start, t_start
    while True:
        next_t += period_s
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t, value = read_counter_mj(nvml, handle)
        polls += 1
        if value != last:
            changes.append(((t + t_previous) / 2, t - t_previous))
            steps_mj.append(value - last)
            last = value
        t_previous = t
        if t - t_start >= poll_s:
            break
    elapsed_s = t - t_start
    pairs = list(pairwise(changes))
    on_time = [(a, b) for a, b in pairs if max(a[1], b[1]) <= 3 * period_s] or pairs
    intervals = [b[0] - a[0] for a, b in on_time if b[0] > a[0]]
    return {
        "poll_duration_s": elapsed_s,
        "polls": polls,
        "poll_rate_hz": (polls - 1) / elapsed_s if elapsed_s > 0 else None,
        "counter_changes": len(changes),
        "intervals_used": len(intervals),
        "update_period_s": min(intervals) if intervals else None,
        "median_update_interval_s": statistics.median(intervals) if intervals else None,
        "max_update_interval_s": max(intervals) if intervals else None,
        "smallest_counter_step_j": min(steps_mj) / 1000.0 if steps_mj else None,
        "counter_went_backwards": any(s < 0 for s in steps_mj),
    }


def _field_number(nvml: Any, value: Any) -> float:
    """The number in an nvmlFieldValue_t, by its value type."""
    kinds = {
        getattr(nvml, "NVML_VALUE_TYPE_DOUBLE", 0): "dVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_INT", 1): "uiVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_LONG", 2): "ulVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", 3): "ullVal",
        getattr(nvml, "NVML_VALUE_TYPE_SIGNED_LONG_LONG", 4): "sllVal",
        getattr(nvml, "NVML_VALUE_TYPE_SIGNED_INT", 5): "siVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_SHORT", 6): "usVal",
    }
    member = kinds.get(int(value.valueType))
    if member is None:
        raise ValueError(f"unknown NVML value type {value.valueType}")
    return float(getattr(value.value, member))


def instant_power_reader(nvml: Any, handle: Any) -> tuple[Callable[[], float], str]:
    """(a function returning power in W, how it reads it).

    Prefers the instantaneous field `NVML_FI_DEV_POWER_INSTANT` (mW); where the binding
    lacks the constant or the driver refuses the field, falls back to
    `nvmlDeviceGetPowerUsage` (mW; an average over about 1 s on recent drivers) and the
    description says so and why.
    """
    field_id = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
    if field_id is None:
        why = "this nvidia-ml-py has no NVML_FI_DEV_POWER_INSTANT"
    elif not hasattr(nvml, "nvmlDeviceGetFieldValues"):
        why = "this nvidia-ml-py has no nvmlDeviceGetFieldValues"
    else:
        success = getattr(nvml, "NVML_SUCCESS", 0)

        def read_field() -> float:
            (value,) = nvml.nvmlDeviceGetFieldValues(handle, [field_id])
            if int(value.nvmlReturn) != success:
                raise RuntimeError(f"NVML returned {value.nvmlReturn} for the field")
            return _field_number(nvml, value) / 1000.0

        try:
            read_field()
            return read_field, "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)"
        except Exception as exc:
            why = f"reading NVML_FI_DEV_POWER_INSTANT failed ({_text(exc)})"
    return (
        lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        f"nvmlDeviceGetPowerUsage (FALLBACK: {why}; on recent drivers a ~1 s average)",
    )


class PowerSampler:
    """Reads power (W) at `sample_hz` in a thread; `samples` holds (monotonic s, W)."""

    def __init__(self, read_w: Callable[[], float], sample_hz: float) -> None:
        self.read_w = read_w
        self.period_s = 1.0 / sample_hz
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-check-power", daemon=True)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            t_before = time.monotonic()
            try:
                power_w = self.read_w()
                self.samples.append(((t_before + time.monotonic()) / 2, power_w))
            except Exception as exc:
                self.errors += 1
                self.last_error = _text(exc)
            next_t += self.period_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def start(self) -> PowerSampler:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return list(self.samples)


def integrate_power_j(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Energy (J) over [t0, t1] of power samples (s, W), linear between samples.

    Power before the first or after the last sample is held at that sample. NaN when
    there is no sample.
    """
    points = sorted(samples)
    if not points or t1 <= t0:
        return math.nan

    def at(t: float) -> float:
        if t <= points[0][0]:
            return points[0][1]
        if t >= points[-1][0]:
            return points[-1][1]
        for (ta, pa), (tb, pb) in pairwise(points):
            if ta <= t <= tb:
                return pa if tb == ta else pa + (pb - pa) * (t - ta) / (tb - ta)
        return points[-1][1]

    path = [(t0, at(t0)), *[(t, p) for t, p in points if t0 < t < t1], (t1, at(t1))]
    return sum((pa + pb) / 2 * (tb - ta) for (ta, pa), (tb, pb) in pairwise(path))


def counter_vs_instant_power(
    nvml: Any,
    handle: Any,
    *,
    duration_s: float,
    warmup_s: float,
    sample_hz: float,
    load: Callable[[], None],
    finish: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Energy of one window from the counter and from integrated instant power.

    Power is sampled from before the warm-up to after the window; `load()` (one bounded
    chunk of work) is called repeatedly through a warm-up of `warmup_s`, so the window
    starts and ends under steady load, then through the `duration_s` window, whose edges
    are two counter reads. `finish()` (e.g. a CUDA synchronise) runs after the window.
    `ratio` is counter energy / integrated energy.
    """
    read_w, method = instant_power_reader(nvml, handle)
    sampler = PowerSampler(read_w, sample_hz).start()
    time.sleep(2.0 / sample_hz)
    warm_until = time.monotonic() + warmup_s
    while time.monotonic() < warm_until:
        load()
    t0, e0_mj = read_counter_mj(nvml, handle)
    calls = 0
    while time.monotonic() < t0 + duration_s:
        load()
        calls += 1
    t1, e1_mj = read_counter_mj(nvml, handle)
    if finish is not None:
        finish()
    time.sleep(2.0 / sample_hz)
    samples = sampler.stop()
    window_s = t1 - t0
    counter_j = (e1_mj - e0_mj) / 1000.0
    integrated_j = integrate_power_j(samples, t0, t1)
    inside = [p for t, p in samples if t0 <= t <= t1]
    ratio = counter_j / integrated_j if integrated_j and math.isfinite(integrated_j) else None
    return {
        "window_s": window_s,
        "load_calls_in_window": calls,
        "power_method": method,
        "power_fallback": method.startswith("nvmlDeviceGetPowerUsage"),
        "counter_energy_j": counter_j,
        "integrated_power_energy_j": integrated_j,
        "ratio_counter_to_integrated": ratio,
        "counter_mean_power_w": counter_j / window_s if window_s > 0 else None,
        "integrated_mean_power_w": integrated_j / window_s if window_s > 0 else None,
        "power_samples_in_window": len(inside),
        "sample_rate_hz": len(inside) / window_s if window_s > 0 else None,
        "min_sample_power_w": min(inside) if inside else None,
        "max_sample_power_w": max(inside) if inside else None,
        "samples_bracket_window": bool(samples) and samples[0][0] <= t0 and samples[-1][0] >= t1,
        "sampler_errors": sampler.errors,
        "sampler_last_error": sampler.last_error,
    }


class Bf16MatmulLoad:
    """n x n bf16 matrix products on a CUDA device, `per_chunk` per call, one chunk in flight."""

    def __init__(self, n: int, device: str = "cuda:0", per_chunk: int = 8) -> None:
        import torch

        self.torch = torch
        self.a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        self.b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        self.c = torch.empty(n, n, device=device, dtype=torch.bfloat16)
        self.per_chunk = per_chunk
        self.flops_per_call = 2.0 * n**3 * per_chunk
        self._previous = None

    def __call__(self) -> None:
        for _ in range(self.per_chunk):
            self.torch.matmul(self.a, self.b, out=self.c)
        event = self.torch.cuda.Event()
        event.record()
        if self._previous is not None:
            self._previous.synchronize()  # keeps one chunk queued: the GPU never idles
        self._previous = event

    def finish(self) -> None:
        self.torch.cuda.synchronize()
        self._previous = None


# --- the steps -----------------------------------------------------------------------


def step_probes(ctx: Context, step: Step) -> None:
    """Step 1: the probe listing; nvml available with the energy counter on every GPU."""
    from harness.measure.probes import load_probes, probe_statuses
    from probes.base import ProbeOptions

    rows = probe_statuses(ProbeOptions())
    step.figures["probes"] = [asdict(r) for r in rows]
    step.say(f"{'probe':<8} {'available':<9} {'source':<8} domains / why not")
    for r in rows:
        detail = ", ".join(r.domains) if r.available else r.reason
        step.say(f"{r.name:<8} {'yes' if r.available else 'no':<9} {r.source:<8} {detail}")
    ctx.rapl_available = any(r.name == "rapl" and r.available for r in rows)
    if ctx.no_gpu_reason:
        step.skip(f"{NO_GPU}: {ctx.no_gpu_reason} (the listing above still ran)")
        return
    nvml_row = next((r for r in rows if r.name == "nvml"), None)
    if nvml_row is None:
        detail = "the nvml probe is not registered (is the project installed?)"
    else:
        detail = "available" if nvml_row.available else nvml_row.reason
    if not step.check("nvml probe available", bool(nvml_row and nvml_row.available), detail):
        return
    (probe,) = load_probes(["nvml"])
    info = probe.info()
    probe.close()
    gpus = list(info.get("gpus", []))
    step.figures["driver_version"] = info.get("driver_version")
    step.figures["gpus"] = gpus
    for gpu in gpus:
        step.say(f"{gpu['domain']}: {gpu['name']} (NVML index {gpu['nvml_index']})")
    counters = [g for g in gpus if g.get("energy_counter")]
    if not step.check(
        "energy counter supported on every visible GPU",
        bool(gpus) and len(counters) == len(gpus),
        f"{len(counters)} of {len(gpus)} GPU(s) answer nvmlDeviceGetTotalEnergyConsumption",
    ):
        return
    ctx.gpu_domains = [g["domain"] for g in gpus]
    ctx.handle = ctx.nvml.nvmlDeviceGetHandleByIndex(int(gpus[0]["nvml_index"]))


def step_idle(ctx: Context, step: Step) -> None:
    """Step 2: idle power per GPU (counter, through the meter) and the update period."""
    reason = ctx.gpu_skip_reason()
    if reason:
        step.skip(reason)
        return
    from harness.measure.meter import EnergyMeter
    from harness.measure.probes import load_probes

    b = ctx.budget
    step.say(f"measuring idle power for {b.idle_s:g} s (energy counter) ...")
    with EnergyMeter(load_probes(["nvml"])) as meter:
        idle_w = meter.measure_idle(b.idle_s)
    step.figures["idle_s"] = b.idle_s
    step.figures["measured_idle_power_w"] = idle_w
    missing = [d for d in ctx.gpu_domains if d not in idle_w]
    step.check(
        "every visible GPU has an idle reading",
        not missing,
        f"no valid reading for {', '.join(missing)}" if missing else ", ".join(idle_w),
    )
    for domain, power_w in idle_w.items():
        step.say(f"measured idle power {domain}: {power_w:.2f} W")
        step.check(
            f"idle power of {domain} is positive",
            math.isfinite(power_w) and power_w > 0,
            f"{power_w:.2f} W",
        )
    step.say(f"polling the energy counter of gpu:0 at {b.poll_hz:g} Hz for {b.poll_s:g} s ...")
    period = observe_update_period(ctx.nvml, ctx.handle, poll_s=b.poll_s, poll_hz=b.poll_hz)
    step.figures["counter_polling"] = period
    rate = period["poll_rate_hz"] or 0.0
    step.say(
        f"{period['polls']} polls ({rate:.0f} Hz achieved), "
        f"{period['counter_changes']} counter changes"
    )
    update_s = period["update_period_s"]
    if update_s is not None:
        step.say(
            f"measured counter update period (smallest interval): {update_s * 1e3:.1f} ms; "
            f"median {period['median_update_interval_s'] * 1e3:.1f} ms, "
            f"largest {period['max_update_interval_s'] * 1e3:.1f} ms"
        )
    step.check(
        "the energy counter changes while polled",
        update_s is not None,
        f"{period['counter_changes']} changes in {period['poll_duration_s']:.2f} s",
    )
    step.check(
        "the energy counter never went backwards",
        not period["counter_went_backwards"],
        "monotonic" if not period["counter_went_backwards"] else "it decreased while polled",
    )
    from probes.nvml import NVML_UPDATE_PERIOD_S

    step.figures["probe_assumed_update_period_s"] = NVML_UPDATE_PERIOD_S
    if update_s is not None and period["median_update_interval_s"] > 1.5 * NVML_UPDATE_PERIOD_S:
        step.note(
            f"the counter updates every {period['median_update_interval_s'] * 1e3:.0f} ms "
            f"(median), slower than the {NVML_UPDATE_PERIOD_S * 1e3:.0f} ms the nvml probe "
            "assumes for its short-window warning (probes/nvml.py NVML_UPDATE_PERIOD_S)"
        )


def step_counter_vs_power(ctx: Context, step: Step) -> None:
    """Step 3: bf16 loop; counter energy vs integrated instantaneous power, within 5 %."""
    reason = ctx.gpu_skip_reason(needs_cuda=True)
    if reason:
        step.skip(reason)
        return
    b = ctx.budget
    load = Bf16MatmulLoad(b.matmul_n)
    step.say(
        f"bf16 {b.matmul_n}x{b.matmul_n} matrix products on cuda:0: {b.warmup_s:g} s warm-up, "
        f"then a {b.load_s:g} s window; instant power sampled at {b.sample_hz:g} Hz ..."
    )
    result = counter_vs_instant_power(
        ctx.nvml,
        ctx.handle,
        duration_s=b.load_s,
        warmup_s=b.warmup_s,
        sample_hz=b.sample_hz,
        load=load,
        finish=load.finish,
    )
    window_s = result["window_s"]
    result["matmul_n"] = b.matmul_n
    result["measured_bf16_tflops"] = (
        load.flops_per_call * result["load_calls_in_window"] / window_s / 1e12
    )
    step.figures.update(result)
    report_counter_vs_power(step, result)


def report_counter_vs_power(step: Step, result: dict[str, Any]) -> None:
    """Print step 3's figures and run its checks."""
    step.say(f"instant power read with {result['power_method']}")
    if result["power_fallback"]:
        step.note("instant power fell back to nvmlDeviceGetPowerUsage: " + result["power_method"])
    if "measured_bf16_tflops" in result:
        step.say(f"measured bf16 throughput: {result['measured_bf16_tflops']:.0f} TFLOP/s")
    step.say(
        f"window {result['window_s']:.3f} s: measured energy from the counter "
        f"{result['counter_energy_j']:.1f} J ({result['counter_mean_power_w']:.1f} W mean)"
    )
    integrated = result["integrated_power_energy_j"]
    step.say(
        f"measured energy from {result['power_samples_in_window']} instant-power samples "
        f"({result['sample_rate_hz']:.1f} Hz): {integrated:.1f} J "
        f"({result['integrated_mean_power_w']:.1f} W mean)"
    )
    ratio = result["ratio_counter_to_integrated"]
    step.say(f"ratio counter / integrated: {ratio:.4f}" if ratio is not None else "no ratio")
    step.check(
        f"instant power sampled at >= {MIN_SAMPLE_HZ:g} Hz",
        (result["sample_rate_hz"] or 0) >= MIN_SAMPLE_HZ,
        f"{result['sample_rate_hz']:.1f} Hz, {result['sampler_errors']} read errors",
    )
    step.check(
        f"counter and integrated power agree within {RATIO_TOLERANCE:.0%}",
        ratio is not None and abs(ratio - 1.0) <= RATIO_TOLERANCE,
        f"ratio {ratio:.4f}" if ratio is not None else "no power samples in the window",
    )


def step_overhead(ctx: Context, step: Step) -> None:
    """Step 4: one begin+end window pair per available probe, in microseconds."""
    from benchmarks.overhead import window_pair_us
    from harness.measure.probes import load_probes

    pairs = ctx.budget.overhead_pairs
    probes = load_probes(None)
    cuda_initialised = "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized()
    step.figures["pairs"] = pairs
    step.figures["cuda_initialised"] = cuda_initialised
    step.figures["window_pair_us"] = {}
    step.say(f"{'probe':<8} {'median_us':>10} {'p95_us':>10}  ({pairs} begin+end pairs)")
    for probe in probes:
        median_us, p95_us = window_pair_us(probe, pairs)
        step.figures["window_pair_us"][probe.name] = {"median_us": median_us, "p95_us": p95_us}
        step.say(f"{probe.name:<8} {median_us:>10.1f} {p95_us:>10.1f}")
    if cuda_initialised:
        step.note("CUDA is initialised: every window edge includes a torch.cuda.synchronize()")
    if "nvml" not in step.figures["window_pair_us"]:
        why = ctx.gpu_skip_reason() or "the nvml probe is not available"
        step.figures["nvml"] = {"status": SKIPPED, "reason": why}
        step.say(f"nvml: skipped: {why}")
    step.check(
        "at least one probe measured",
        bool(step.figures["window_pair_us"]),
        ", ".join(step.figures["window_pair_us"]) or "no probe",
    )


def suite_text(budget: Budget, probes: list[str]) -> str:
    """The TOML of step 5's suite (resnet18, batch 256, inference, four variants)."""
    return SUITE_TEXT.format(
        repetitions=budget.suite_repetitions,
        min_window_s=float(budget.suite_min_window_s),
        idle_s=float(budget.suite_idle_s),
        probes=json.dumps(probes),
    )


def suite_case_figures(run_dir: Path) -> tuple[list[dict[str, Any]], Any]:
    """Per case of a finished run: measured and estimated J/sample; and the ok rows."""
    import pandas as pd

    cases = pd.read_csv(run_dir / "cases.csv")
    measurements = pd.read_csv(run_dir / "measurements.csv")
    valid = measurements["valid"].astype(str).str.lower() == "true"
    gpu = measurements[measurements["domain"].astype(str).str.startswith("gpu:") & valid]
    gpu_per_sample = gpu.groupby(["case_id", "domain"])["energy_j_per_sample"].mean()
    out = []
    for _, row in cases.iterrows():
        per_domain = {
            domain: float(value)
            for (case_id, domain), value in gpu_per_sample.items()
            if case_id == row["case_id"]
        }
        out.append(
            {
                "case_id": row["case_id"],
                "variant": row["variant"],
                "status": row["status"],
                "error": row["error"] if isinstance(row["error"], str) else "",
                "measured_source": row.get("measured_source"),
                "repetitions": row.get("n"),
                "measured_energy_j_per_sample": row.get("energy_j_per_sample_mean"),
                "measured_energy_j_per_sample_std": row.get("energy_j_per_sample_std"),
                "measured_dynamic_energy_j_per_sample": row.get("dynamic_energy_j_per_sample_mean"),
                "measured_gpu_energy_j_per_sample": per_domain,
                "estimated_energy_j_per_sample_dense_hw": row.get(
                    "est_dense_hw_energy_j_per_sample"
                ),
                "estimated_energy_j_per_sample_sparse_ideal": row.get(
                    "est_sparse_ideal_energy_j_per_sample"
                ),
                "estimate_profile": row.get("estimate_profile"),
                "estimate_error_pct": row.get("estimate_error_pct"),
                "latency_s_per_batch": row.get("latency_s_per_batch"),
                "throughput_samples_per_s": row.get("throughput_samples_per_s"),
                "sparsity": row.get("sparsity"),
                "nonzero_params": row.get("nonzero_params"),
            }
        )
    energy = pd.to_numeric(cases.get("energy_j"), errors="coerce")
    ok = cases[(cases["status"] == "ok") & energy.notna() & (energy > 0)]
    return finite(out), ok.reset_index(drop=True)


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def step_suite(ctx: Context, step: Step) -> None:
    """Step 5: the gpu-suite subset through run_suite; measured vs estimated J/sample."""
    reason = ctx.gpu_skip_reason(needs_cuda=True)
    if reason:
        step.skip(reason)
        return
    from harness.spec.suite import load_suite, parse_suite

    probes = ctx.suite_probes or (["nvml", "rapl"] if ctx.rapl_available else ["nvml"])
    ctx.suite_probes = probes
    text = suite_text(ctx.budget, probes)
    bundled = {c.case_id for c in load_suite("gpu").cases}
    missing = [c.case_id for c in parse_suite(text, "step 5").cases if c.case_id not in bundled]
    if missing:
        step.note(f"cases not in the bundled gpu suite (did it change?): {', '.join(missing)}")
    measure_suite(ctx, step, text, counters_only=True)


def measure_suite(ctx: Context, step: Step, text: str, *, counters_only: bool) -> None:
    """Run a suite (TOML `text`) with run_suite and report each case of its cases.csv.

    Step 5 passes the resnet18 subset; a test passes a tiny CPU suite to exercise the
    plumbing. `counters_only`: check that every measured total came from counters.
    """
    from rich.console import Console

    from harness.run.options import RunOptions
    from harness.run.runner import run_suite
    from harness.spec.suite import parse_suite

    suite = parse_suite(text, "gpu_check step 5")
    probes = list(suite.settings.probes)
    base = ctx.run_dir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    step.figures["run_dir"] = str(base / "run")
    step.figures["probes"] = probes
    step.figures["suite_toml"] = text
    s = suite.settings
    step.say(
        f"{len(suite.cases)} cases, {s.repetitions} repetition(s), windows >= "
        f"{s.min_window_s:g} s, probes {', '.join(probes)}; run in {base / 'run'}"
    )
    run_dir = run_suite(
        suite,
        RunOptions(cache_dir=base / "cache"),
        out=base / "run",
        console=Console(file=sys.stdout, width=120),
    )
    rows, ok = suite_case_figures(run_dir)
    step.figures["cases"] = rows
    ctx.suite_cases = ok
    step.say(
        f"{'variant':<28} {'status':<8} {'measured J/sample':>18} {'gpu J/sample':>13} "
        f"{'estimated J/sample':>19} {'error %':>8}"
    )
    for r in rows:
        gpu_j = sum(r["measured_gpu_energy_j_per_sample"].values()) or None
        step.say(
            f"{r['variant']:<28} {r['status']:<8} "
            f"{_fmt(r['measured_energy_j_per_sample'], '.4g'):>18} {_fmt(gpu_j, '.4g'):>13} "
            f"{_fmt(r['estimated_energy_j_per_sample_dense_hw'], '.4g'):>19} "
            f"{_fmt(r['estimate_error_pct'], '+.1f'):>8}"
        )
        if r["status"] != OK:
            step.say(f"  {r['variant']}: {r['status']}: {r['error']}")
    step.note(
        "measured = the run's total (in-total domains, source in measured_source); "
        "estimated = the dense-hw analytic estimate (est_dense_hw_energy_j_per_sample); "
        "error % = estimate_error_pct of cases.csv (dynamic vs dynamic when an idle "
        "baseline was measured)"
    )
    failed = [r["variant"] for r in rows if r["status"] == FAILED]
    skipped = [f"{r['variant']} ({r['error']})" for r in rows if r["status"] == SKIPPED]
    if skipped:
        step.note("skipped cases: " + "; ".join(skipped))
    step.check("no case failed", not failed, ", ".join(failed) or f"{len(rows)} cases")
    sources = sorted({str(r["measured_source"]) for r in rows if r["status"] == OK})
    if counters_only:
        step.check(
            "measured totals come from hardware counters",
            bool(sources) and all(s == "counter" for s in sources),
            "measured_source: " + (", ".join(sources) or "none"),
        )


def _count_columns(columns: Any) -> list[str]:
    """The calibration count columns among `columns` (flops*, bytes, comm_bytes*)."""
    counts = []
    for c in map(str, columns):
        if c in ("flops", "bytes") or c.startswith(("flops_", "comm_bytes")):
            if not c.endswith("_per_sample"):
                counts.append(c)
    return counts


def suite_cases_table(cases: Any) -> Any:
    """Step 5's ok cases as a calibration cases table: case, duration_s, energy_j, counts.

    Empty count cells mean none of that kind of work (cases.csv leaves unused dtypes
    empty), so they become 0. A per-dtype `flops_*` split replaces the plain `flops`.
    """
    import pandas as pd

    columns = _count_columns(cases.columns)
    if any(c.startswith("flops_") for c in columns):
        columns = [c for c in columns if c != "flops"]
    if any(c.startswith("comm_bytes_") for c in columns):
        columns = [c for c in columns if c != "comm_bytes"]
    table = pd.DataFrame(
        {
            "case": cases["case_id"].astype(str),
            "duration_s": pd.to_numeric(cases["duration_s"], errors="coerce"),
            "energy_j": pd.to_numeric(cases["energy_j"], errors="coerce"),
        }
    )
    for c in columns:
        table[c] = pd.to_numeric(cases[c], errors="coerce").fillna(0.0)
    return table


def calibration_errors(micro: Any, suite: Any) -> dict[str, Any]:
    """Fit on the microbenchmarks; errors on the suite cases (all figures: estimates).

    - `calibrated_*`: the microbenchmark fit predicting each suite case;
    - `loo_pooled_*`: each suite case predicted by a fit on every microbenchmark row and
      the other suite cases (leave-one-out, `harness.estimate.calibrate.leave_one_out`);
    - `loo_suite_only`: leave-one-out over the suite cases alone, or why it cannot run
      (it needs one more case than coefficients).
    """
    import pandas as pd

    from harness.errors import EnergyHarnessError
    from harness.estimate.calibrate import fit_cases, leave_one_out

    fit = fit_cases(micro)
    out: dict[str, Any] = {
        "microbenchmark_fit": {
            "coefficients": fit.coefficients,
            "coefficient_units": {f.column: f"J per {f.unit}" for f in fit.features},
            "undetermined": list(fit.undetermined),
            "rms_residual_pct": fit.rms_residual_pct,
        }
    }
    if suite is None or len(suite) == 0:
        out["cases"] = []
        out["note"] = "no suite case to hold the calibration against"
        return out
    counts = [c for c in suite.columns if c not in ("case", "energy_j")]
    predicted = sum(fit.coefficients.get(c, 0.0) * suite[c] for c in counts)
    unfitted = [c for c in counts if c not in fit.coefficients and suite[c].abs().sum() > 0]
    pooled = pd.concat([micro, suite], ignore_index=True)
    pooled_counts = _count_columns(pooled.columns)
    pooled[pooled_counts] = pooled[pooled_counts].fillna(0.0)
    pooled = pooled[["case", "duration_s", "energy_j", *pooled_counts]]
    loo = leave_one_out(pooled).iloc[len(micro) :].reset_index(drop=True)
    try:
        alone = leave_one_out(suite)
        out["loo_suite_only"] = {"status": OK, "loo_error_pct": list(alone["loo_error_pct"])}
    except EnergyHarnessError as exc:
        alone = None
        out["loo_suite_only"] = {"status": SKIPPED, "reason": str(exc)}
    if unfitted:
        out["calibrated_note"] = (
            f"the microbenchmarks do not exercise {', '.join(unfitted)}: the calibrated "
            "estimate counts that work as free"
        )
    rows = []
    for i in range(len(suite)):
        measured = float(suite["energy_j"].iloc[i])
        rows.append(
            {
                "case": suite["case"].iloc[i],
                "measured_energy_j": measured,
                "calibrated_estimate_energy_j": float(predicted.iloc[i]),
                "calibrated_error_pct": 100.0 * (float(predicted.iloc[i]) - measured) / measured,
                "loo_pooled_estimate_energy_j": float(loo["loo_predicted_energy_j"].iloc[i]),
                "loo_pooled_error_pct": float(loo["loo_error_pct"].iloc[i]),
                "loo_suite_only_error_pct": (
                    float(alone["loo_error_pct"].iloc[i]) if alone is not None else None
                ),
            }
        )
    out["cases"] = rows
    out["median_abs_calibrated_error_pct"] = statistics.median(
        abs(r["calibrated_error_pct"]) for r in rows
    )
    out["median_abs_loo_pooled_error_pct"] = statistics.median(
        abs(r["loo_pooled_error_pct"]) for r in rows
    )
    return out


def step_calibrate(ctx: Context, step: Step) -> None:
    """Step 6: small calibration on the GPU; leave-one-out error of the step-5 cases."""
    reason = ctx.gpu_skip_reason(needs_cuda=True)
    if reason:
        step.skip(reason)
        return
    calibrate_against_suite(ctx, step, "cuda")


def calibrate_against_suite(ctx: Context, step: Step, device_name: str) -> None:
    """Small microbenchmarks on `device_name`, a fit, and its errors on `ctx.suite_cases`."""
    try:
        from harness.estimate.microbench import plan_microbenchmarks, run_microbenchmarks
    except ImportError as exc:
        step.skip(f"calibration has not landed ({exc})")
        return
    import torch

    from harness.measure.meter import EnergyMeter
    from harness.measure.probes import load_probes

    b = ctx.budget
    device = torch.device(device_name)
    probes = ctx.suite_probes or (["nvml", "rapl"] if ctx.rapl_available else ["nvml"])
    step.figures["probes"] = probes
    benches = plan_microbenchmarks(device, small=True)
    step.say(
        f"calibrate --small on {device}: idle {b.calibrate_idle_s:g} s + {len(benches)} "
        f"microbenchmarks x {b.calibrate_rounds} round(s) of {b.calibrate_seconds:g} s, "
        f"probes {', '.join(probes)}"
    )

    def show(row: dict[str, Any]) -> None:
        step.say(
            f"  measured {row['case']}: {row['duration_s']:.2f} s, {row['energy_j']:.2f} J "
            f"({row['energy_source']})"
        )

    with EnergyMeter(load_probes(probes)) as meter:
        table = run_microbenchmarks(
            meter,
            device,
            benches,
            seconds=b.calibrate_seconds,
            idle_s=b.calibrate_idle_s,
            rounds=b.calibrate_rounds,
            on_row=show,
        )
    bad = table["energy_j"].isna() | (table["energy_j"] <= 0)
    if bad.any():
        step.note(f"dropped microbenchmark rows without valid energy: {list(table.case[bad])}")
    micro = table[~bad].reset_index(drop=True)
    micro = micro[["case", "duration_s", "energy_j", *_count_columns(micro.columns)]]
    step.figures["microbenchmarks"] = micro.to_dict(orient="records")
    suite = suite_cases_table(ctx.suite_cases) if ctx.suite_cases is not None else None
    result = calibration_errors(micro, suite)
    step.figures.update(result)
    fit = result["microbenchmark_fit"]
    for column, value in fit["coefficients"].items():
        step.say(f"estimate (fit): {column}: {value:.4g} {fit['coefficient_units'][column]}")
    step.say(f"fit rms residual over the microbenchmarks: {fit['rms_residual_pct']:.1f} %")
    if result.get("calibrated_note"):
        step.note(result["calibrated_note"])
    loo_alone = result.get("loo_suite_only", {})
    if loo_alone.get("status") == SKIPPED:
        step.note(f"leave-one-out over the suite cases alone: {loo_alone['reason']}")
    step.say(
        f"{'case':<48} {'measured J':>11} {'calibrated J':>13} {'err %':>7} "
        f"{'LOO pooled J':>13} {'LOO err %':>9}"
    )
    for r in result["cases"]:
        step.say(
            f"{r['case']:<48} {r['measured_energy_j']:>11.2f} "
            f"{r['calibrated_estimate_energy_j']:>13.2f} {r['calibrated_error_pct']:>+7.1f} "
            f"{r['loo_pooled_estimate_energy_j']:>13.2f} {r['loo_pooled_error_pct']:>+9.1f}"
        )
    if result["cases"]:
        step.say(
            f"median |error|: calibrated {result['median_abs_calibrated_error_pct']:.1f} %, "
            f"leave-one-out (pooled) {result['median_abs_loo_pooled_error_pct']:.1f} %"
        )
    step.check(
        "leave-one-out error computed for every measured suite case",
        bool(result["cases"])
        and all(math.isfinite(r["loo_pooled_error_pct"]) for r in result["cases"]),
        f"{len(result['cases'])} case(s)" if result["cases"] else result.get("note", ""),
    )


STEPS: list[tuple[int, str, str, Callable[[Context, Step], None]]] = [
    (1, "probes", "energy-harness probes; NVML available with the energy counter", step_probes),
    (2, "idle", "idle power per GPU (counter) and the counter's update period", step_idle),
    (
        3,
        "counter-vs-power",
        "bf16 loop: counter vs integrated instant power",
        step_counter_vs_power,
    ),
    (4, "overhead", "cost of one begin+end window pair per probe", step_overhead),
    (5, "gpu-suite", "resnet18 bs256 inference: measured vs estimated J/sample", step_suite),
    (
        6,
        "calibrate",
        "calibrate --small on the GPU; leave-one-out of the suite cases",
        step_calibrate,
    ),
]


# --- main ----------------------------------------------------------------------------


def machine_record(ctx: Context) -> dict[str, Any]:
    """Host, Python, torch and GPU facts for the JSON."""
    from importlib import metadata

    record: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for package in ("torch", "nvidia-ml-py", "energy-harness"):
        try:
            record[f"{package}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            record[f"{package}_version"] = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        record["cuda_device"] = torch.cuda.get_device_name(0)
        record["cuda_runtime"] = torch.version.cuda
    if ctx.nvml is not None:
        try:
            record["nvml_driver_version"] = _text(ctx.nvml.nvmlSystemGetDriverVersion())
        except Exception as exc:
            record["nvml_driver_version"] = f"unknown ({_text(exc)})"
    record["no_gpu_reason"] = ctx.no_gpu_reason or None
    return record


def default_out(now: datetime | None = None) -> Path:
    """results/validation/gpu_check-<UTC time>.json"""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / "validation" / f"gpu_check-{stamp}.json"


def run_check(
    budget: Budget, *, quick: bool, out: Path, deadline_s: float, run_dir: Path | None = None
) -> dict[str, Any]:
    """Run the six steps, write the JSON to `out`, return it."""
    started_utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.monotonic()
    nvml, why = nvml_presence()
    ctx = Context(budget=budget, nvml=nvml, no_gpu_reason=why, run_dir=run_dir)
    if not why:
        try:
            import torch

            if not torch.cuda.is_available():
                ctx.cuda_reason = f"torch {torch.__version__} sees no CUDA device"
        except ImportError:
            ctx.cuda_reason = "torch is not installed"
    else:
        print(f"no GPU steps here: {NO_GPU}: {why}", flush=True)
    steps = []
    for number, name, title, run in STEPS:
        step = Step(number, name, title, budget.step_budget_s(number))
        print(f"=== step {number}: {title}", flush=True)
        t0 = time.monotonic()
        if t0 - t_start > deadline_s:
            step.fail(f"not started: the check's deadline ({deadline_s:g} s) had passed")
        else:
            try:
                run(ctx, step)
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                step.fail(
                    f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
                )
        step.duration_s = time.monotonic() - t0
        steps.append(step)
    failed = [s.name for s in steps if s.status == FAILED]
    skipped = [s.name for s in steps if s.status == SKIPPED]
    record = {
        "check": "benchmarks.gpu_check",
        "schema_version": SCHEMA_VERSION,
        "status": FAILED if failed else OK,
        "exit_code": 1 if failed else 0,
        "failed_steps": failed,
        "skipped_steps": skipped,
        "quick": quick,
        "started_utc": started_utc,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - t_start,
        "machine": machine_record(ctx),
        "budget": asdict(budget),
        "steps": [asdict(s) for s in steps],
    }
    record = finite(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    print(
        f"=== {record['status'].upper()} in {record['duration_s']:.0f} s: "
        f"failed {failed or 'none'}, skipped {skipped or 'none'}; wrote {out}",
        flush=True,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the check; returns the exit status (1 if a check failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file (default results/validation/...)")
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=450.0,
        help="start no step after this many seconds (default 450)",
    )
    parser.add_argument("--run-dir", type=Path, help="keep step 5's suite run and model cache here")
    args = parser.parse_args(argv)
    record = run_check(
        QUICK if args.quick else FULL,
        quick=args.quick,
        out=args.out or default_out(),
        deadline_s=args.deadline_s,
        run_dir=args.run_dir,
    )
    return int(record["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
