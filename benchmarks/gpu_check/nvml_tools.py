"""NVML measurement tools of the check: is NVML here, reading the total-energy counter,
its observed update period, an instantaneous power reader, a background power sampler,
the integral of power samples, and one window's counter energy vs integrated power.

pynvml is imported lazily (and passed around as `nvml`): this module imports without it.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from benchmarks.gpu_check.records import as_text


def nvml_presence() -> tuple[Any, str]:
    """(pynvml module, "") when NVML starts and sees a GPU, else (None, why not)."""
    try:
        import pynvml
    except ImportError:
        return None, "the NVML binding is not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None, f"NVML did not start ({as_text(exc)})"
    try:
        count = pynvml.nvmlDeviceGetCount()
    except Exception as exc:
        return None, f"NVML could not count GPUs ({as_text(exc)})"
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
    changes, steps_mj, polls, elapsed_s = _poll_counter(nvml, handle, poll_s, period_s)
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


def _poll_counter(
    nvml: Any, handle: Any, poll_s: float, period_s: float
) -> tuple[list[tuple[float, float]], list[int], int, float]:
    """Poll every `period_s` for `poll_s`: (changes as (time, width of their bracket),
    counter steps in mJ, number of polls, seconds from the first poll to the last)."""
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
    return changes, steps_mj, polls, t - t_start


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
            why = f"reading NVML_FI_DEV_POWER_INSTANT failed ({as_text(exc)})"
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
                self.last_error = as_text(exc)
            next_t += self.period_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def start(self) -> PowerSampler:
        """Start sampling in the background; returns the sampler."""
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, float]]:
        """Stop sampling; returns a copy of the samples."""
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
    figures = _window_figures(samples, t0, t1, (e1_mj - e0_mj) / 1000.0)
    return {
        "window_s": t1 - t0,
        "load_calls_in_window": calls,
        "power_method": method,
        "power_fallback": method.startswith("nvmlDeviceGetPowerUsage"),
        **figures,
        "sampler_errors": sampler.errors,
        "sampler_last_error": sampler.last_error,
    }


def _window_figures(
    samples: list[tuple[float, float]], t0: float, t1: float, counter_j: float
) -> dict[str, Any]:
    """Counter energy `counter_j` over [t0, t1] next to the integral of the power samples."""
    window_s = t1 - t0
    integrated_j = integrate_power_j(samples, t0, t1)
    inside = [p for t, p in samples if t0 <= t <= t1]
    ratio = counter_j / integrated_j if integrated_j and math.isfinite(integrated_j) else None
    return {
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
    }
