"""Workloads the meter wraps: an inference step and a training step on one fixed batch.

A step is a plain callable `step() -> samples processed`; the meter stays out of the hot
path. `calibrate_iterations` finds how many steps make a window last at least the
counters' update period (`meter.min_window_s`) after a warm-up, and `measure_workload`
runs that many steps inside one window and reports energy per sample.

CUDA work is asynchronous: calibration synchronises before reading the clock, and the
meter synchronises at both edges of a window, so queued kernels land in their window.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.data import DatasetSplits
from benchmarks.models import example_input
from harness.compress import VariantUnsupported
from harness.meter import EnergyMeter, Measurement, sync_cuda
from harness.training import TrainConfig, make_optimizer
from probes.errors import EnergyHarnessError

Step = Callable[[], int]


def make_batch(
    batch_size: int,
    *,
    data: DatasetSplits | None = None,
    model_name: str | None = None,
    split: str = "test",
    device: str | torch.device = "cpu",
    input_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of (inputs, labels) on `device`.

    From `data`: the first `batch_size` samples of `split` ("train" or "test"), repeated
    if the split is smaller. Without data: random inputs of `model_name`'s input shape and
    random labels (10 classes). `input_dtype` casts float inputs (float16 for 2:4 models).
    """
    if batch_size < 1:
        raise EnergyHarnessError(f"batch size must be >= 1, got {batch_size}")
    if data is not None:
        if split not in ("train", "test"):
            raise EnergyHarnessError(f"split must be 'train' or 'test', got {split!r}")
        dataset = data.train if split == "train" else data.test
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise EnergyHarnessError(f"dataset {data.name!r} has an empty {split} split")
        samples = [dataset[i % len(dataset)] for i in range(batch_size)]  # type: ignore[arg-type]
        inputs = torch.stack([torch.as_tensor(x) for x, _ in samples])
        labels = torch.as_tensor([int(y) for _, y in samples], dtype=torch.long)
    elif model_name is not None:
        gen = torch.Generator().manual_seed(seed)
        inputs = example_input(model_name, batch_size, generator=gen)
        labels = torch.randint(0, 10, (batch_size,), generator=gen)
    else:
        raise EnergyHarnessError("make_batch needs a dataset or a model name")
    if input_dtype is not None and inputs.is_floating_point():
        inputs = inputs.to(input_dtype)
    return inputs.to(device), labels.to(device)


def inference_step(model: nn.Module, inputs: torch.Tensor) -> Step:
    """A step that runs one forward pass of `model` (eval mode, inference mode) on `inputs`."""
    model.eval()
    batch = len(inputs)

    def step() -> int:
        with torch.inference_mode():
            model(inputs)
        return batch

    return step


def training_step(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig | None = None,
    *,
    copy_model: bool = True,
    variant: str = "",
) -> Step:
    """A step that runs forward, cross-entropy, backward and an SGD update on one batch.

    Works on a copy of `model` unless `copy_model=False`, so the prepared model is not
    changed. Pruning is not enforced: repeated steps let zeroed weights grow back (the
    arithmetic per step is the same on dense hardware). Raises VariantUnsupported for a
    model without trainable parameters (dynamic int8 models run inference only).
    """
    if not any(p.requires_grad for p in model.parameters()):
        raise VariantUnsupported(
            variant or type(model).__name__,
            "the training step needs trainable float weights; quantized models run inference only",
        )
    model = copy.deepcopy(model) if copy_model else model
    model.train()
    optimizer = make_optimizer(model, config or TrainConfig())
    criterion = nn.CrossEntropyLoss()
    batch = len(inputs)

    def step() -> int:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(inputs), labels).backward()
        optimizer.step()
        return batch

    return step


def run_iterations(step: Step, iterations: int) -> int:
    """Run `step` `iterations` times; returns the samples processed."""
    samples = 0
    for _ in range(iterations):
        done = step()
        if not isinstance(done, int) or done < 1:
            raise EnergyHarnessError(
                f"a workload step must return the number of samples it processed (>= 1), "
                f"got {done!r}"
            )
        samples += done
    return samples


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
    start_s = clock()
    for _ in range(max(warmup_iterations, 0)):
        run_iterations(step, 1)
    sync()
    while clock() - start_s < warmup_s:
        run_iterations(step, 1)
        sync()
    target_s = min_window_s * margin
    probe_s = max(0.25 * target_s, 0.02)
    per_iteration_s = _time_per_iteration(step, target_s, probe_s, max_iterations, sync, clock)
    needed = math.ceil(target_s / per_iteration_s) if per_iteration_s > 0 else max_iterations
    return max(min_iterations, min(max_iterations, needed))


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
        samples = run_iterations(step, iterations)
        done = iterations
        if min_window_s > 0:
            sync()
            elapsed_s = time.perf_counter() - t0
            while elapsed_s < min_window_s:
                per_step_s = max(elapsed_s / done, 1e-9)
                more = max(1, math.ceil((min_window_s - elapsed_s) / per_step_s * 1.1))
                samples += run_iterations(step, more)
                done += more
                sync()
                elapsed_s = time.perf_counter() - t0
    assert window.measurement is not None
    return WorkloadRun(name, done, samples, window.measurement)
