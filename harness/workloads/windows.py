"""Measurement windows over a workload step: how many steps fill a window, and one window.

`calibrate_iterations` finds how many steps make a window last at least the counters'
update period (`meter.min_window_s`) after a warm-up; `measure_workload` runs that many
steps inside one meter window (more if they ran faster than calibrated) and reports
energy per sample.

CUDA work is asynchronous: calibration synchronises before reading the clock, and the
meter synchronises at both edges of a window, so queued kernels land in their window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import EnergyHarnessError
from harness.measure.clock import sync_cuda
from harness.measure.meter import EnergyMeter, Measurement
from harness.workloads.steps import Step, run_iterations


def calibrate_iterations(
    step: Step,
    min_window_s: float,
    *,
    warmup_iterations: int = 3,
    warmup_s: float = 0.2,
    margin: float = 1.25,
    min_iterations: int = 1,
    max_iterations: int = 10_000_000,
    sync: Callable[[], None] = sync_cuda,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Iterations of `step` that make one window last >= `min_window_s` (seconds).

    Warms up for `warmup_iterations` steps and at least `warmup_s` seconds (caches,
    allocator, GPU clocks), then times at least three rounds of steps (together a quarter
    of the target, at least 20 ms) and scales the fastest rate to `min_window_s x margin`.
    The result is within [min_iterations, max_iterations]. `sync` waits for queued device
    work before the clock is read. Raises EnergyHarnessError for bad arguments.
    """
    if not (min_window_s >= 0 and math.isfinite(min_window_s)):
        raise EnergyHarnessError(f"min_window_s must be a finite number >= 0, got {min_window_s}")
    if margin < 1 or min_iterations < 1 or max_iterations < min_iterations:
        raise EnergyHarnessError(
            f"calibration needs margin >= 1 and 1 <= min_iterations <= max_iterations "
            f"(got margin {margin}, {min_iterations}..{max_iterations})"
        )
    warm_up(step, warmup_iterations, warmup_s, sync=sync, clock=clock)
    target_s = min_window_s * margin
    probe_s = max(0.25 * target_s, 0.02)
    per_iteration_s = _time_per_iteration(step, target_s, probe_s, max_iterations, sync, clock)
    needed = math.ceil(target_s / per_iteration_s) if per_iteration_s > 0 else max_iterations
    return max(min_iterations, min(max_iterations, needed))


def warm_up(
    step: Step,
    iterations: int,
    min_s: float,
    *,
    sync: Callable[[], None] = sync_cuda,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Run `step` `iterations` times and for at least `min_s` seconds (caches, allocator,
    clocks), outside any window."""
    start_s = clock()
    for _ in range(max(iterations, 0)):
        run_iterations(step, 1)
    sync()
    while clock() - start_s < min_s:
        run_iterations(step, 1)
        sync()


def _time_per_iteration(
    step: Step,
    target_s: float,
    probe_s: float,
    max_iterations: int,
    sync: Callable[[], None],
    clock: Callable[[], float],
) -> float:
    """The fastest seconds per iteration seen over >= 3 timed rounds lasting >= probe_s.

    The fastest, not the mean: a round slowed by another process would otherwise give
    too few iterations and a window shorter than the counters can resolve.
    """
    rates: list[float] = []
    spent_s = 0.0
    count = 1
    while True:
        t0 = clock()
        run_iterations(step, count)
        sync()
        elapsed_s = clock() - t0
        rates.append(elapsed_s / count)
        spent_s += elapsed_s
        if elapsed_s >= 2 * target_s:  # one step already spans the window twice over
            break
        if (len(rates) >= 3 and spent_s >= probe_s) or count >= max_iterations:
            break
        best = min(rates)
        want = math.ceil(probe_s / 3 / best) if best > 0 else count * 16
        count = min(max_iterations, max(1, min(want, count * 16)))
    positive = [r for r in rates if r > 0]
    return min(positive) if positive else 0.0


@dataclass(frozen=True)
class WorkloadRun:
    """One measured window of a workload: iterations, samples and the meter's measurement."""

    name: str
    iterations: int
    samples: int
    measurement: Measurement

    @property
    def duration_s(self) -> float:
        return self.measurement.duration_s

    @property
    def energy_j(self) -> float:
        """Total energy of the window (NaN if a counter was invalid)."""
        return self.measurement.total_energy_j

    @property
    def energy_per_sample_j(self) -> float:
        return self.energy_j / self.samples

    @property
    def energy_per_iteration_j(self) -> float:
        return self.energy_j / self.iterations

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.duration_s if self.duration_s > 0 else float("nan")


def measure_workload(
    meter: EnergyMeter,
    name: str,
    step: Step,
    iterations: int,
    *,
    min_window_s: float | None = None,
    sync: Callable[[], None] = sync_cuda,
) -> WorkloadRun:
    """Run `iterations` steps inside one meter window named `name`.

    If the steps ran faster than calibrated and the window would be shorter than
    `min_window_s` (default: `meter.min_window_s`; 0 turns this off), more steps are run
    inside the same window until it is long enough. `WorkloadRun.iterations` and
    `samples` count every step that ran: use them, not the calibrated count, per sample.
    """
    if iterations < 1:
        raise EnergyHarnessError(f"iterations must be >= 1, got {iterations}")
    if min_window_s is None:
        min_window_s = meter.min_window_s
    with meter.window(name) as window:
        t0 = time.perf_counter()
        done, samples = run_for(
            step, iterations, min_window_s, sync=sync, elapsed_s=lambda: time.perf_counter() - t0
        )
    assert window.measurement is not None
    return WorkloadRun(name, done, samples, window.measurement)


def run_for(
    step: Step,
    iterations: int,
    min_window_s: float,
    *,
    sync: Callable[[], None],
    elapsed_s: Callable[[], float],
) -> tuple[int, int]:
    """Run `iterations` steps, then more until `elapsed_s()` reaches `min_window_s`.

    `elapsed_s` is the time since the window began (in a distributed job, the slowest
    rank's, so every rank runs the same steps). Returns (steps run, samples processed).
    """
    samples = run_iterations(step, iterations)
    done = iterations
    if min_window_s <= 0:
        return done, samples
    sync()
    elapsed = elapsed_s()
    while elapsed < min_window_s:  # faster than calibrated: extend the same window
        per_step_s = max(elapsed / done, 1e-9)
        more = max(1, math.ceil((min_window_s - elapsed) / per_step_s * 1.1))
        samples += run_iterations(step, more)
        done += more
        sync()
        elapsed = elapsed_s()
    return done, samples
