"""Inference and training steps, iteration calibration, and windows of the real meter."""

from __future__ import annotations

import copy
import time

import pytest
import torch

from harness.measure.meter import EnergyMeter
from harness.prepare.hardware import quantize_dynamic_int8
from harness.spec.catalog import build_model
from harness.spec.variants import VariantUnsupported
from harness.workloads.batches import make_batch
from harness.workloads.steps import inference_step, run_iterations, training_step
from harness.workloads.windows import calibrate_iterations, measure_workload
from probes.errors import EnergyHarnessError
from probes.model import ModelProbe

pytestmark = pytest.mark.usefixtures("one_thread")


class StepClock:
    """A step whose every call advances a clock by a known cost (seconds)."""

    def __init__(self, costs_s: list[float], then_s: float, batch: int = 8) -> None:
        self.now_s = 0.0
        self.costs_s = list(costs_s)
        self.then_s = then_s
        self.batch = batch
        self.calls = 0

    def clock(self) -> float:
        return self.now_s

    def step(self) -> int:
        self.now_s += self.costs_s.pop(0) if self.costs_s else self.then_s
        self.calls += 1
        return self.batch


def test_calibration_scales_the_step_to_the_window():
    fake = StepClock([0.5, 0.2], then_s=0.01)  # slow first steps: warm-up
    n = calibrate_iterations(
        fake.step, 1.0, warmup_iterations=2, warmup_s=0.0, margin=1.25, clock=fake.clock
    )
    assert n == 125  # 1.0 s x 1.25 / 0.01 s per step, not biased by the warm-up


def test_calibration_keeps_the_fastest_rate_when_a_round_is_slowed_down():
    fake = StepClock([0.0] * 3 + [0.2], then_s=0.01)  # first timed step hit by a hiccup
    n = calibrate_iterations(fake.step, 0.5, warmup_iterations=3, warmup_s=0.0, clock=fake.clock)
    assert n * 0.01 >= 0.5  # the window still lasts the minimum duration
    assert n == 63  # ceil(0.5 x 1.25 / 0.01)


def test_calibration_warms_up_for_a_duration_and_covers_slow_steps():
    fake = StepClock([], then_s=3.0)
    n = calibrate_iterations(fake.step, 1.0, warmup_iterations=0, warmup_s=5.0, clock=fake.clock)
    assert n == 1  # one 3 s step already lasts more than the 1 s window
    assert fake.calls == 2 + 1  # 5 s of warm-up takes two steps, then one timed step


def test_calibration_without_a_minimum_and_with_bounds():
    fake = StepClock([], then_s=0.001)
    assert calibrate_iterations(fake.step, 0.0, warmup_s=0.0, clock=fake.clock) == 1
    assert (
        calibrate_iterations(fake.step, 10.0, warmup_s=0.0, max_iterations=500, clock=fake.clock)
        == 500
    )
    with pytest.raises(EnergyHarnessError, match="min_window_s"):
        calibrate_iterations(fake.step, float("nan"))
    with pytest.raises(EnergyHarnessError, match="margin >= 1"):
        calibrate_iterations(fake.step, 1.0, margin=0.5)


def test_a_step_must_report_its_samples():
    with pytest.raises(EnergyHarnessError, match="number of samples"):
        run_iterations(lambda: None, 2)  # type: ignore[arg-type, return-value]
    assert run_iterations(lambda: 4, 3) == 12


def test_batches_come_from_the_dataset_or_the_models_shape(digits):
    inputs, labels = make_batch(400, data=digits)  # more than the 360 test images
    assert inputs.shape == (400, 1, 32, 32)
    assert torch.equal(inputs[:10], digits.test.tensors[0][:10])
    assert torch.equal(inputs[360:370], inputs[:10])  # wraps around
    assert torch.equal(labels[:10], digits.test.tensors[1][:10])
    half, _ = make_batch(2, data=digits, split="train", input_dtype=torch.float16)
    assert half.dtype == torch.float16
    tokens, _ = make_batch(3, model_name="transformer")
    assert tokens.shape == (3, 128) and tokens.dtype == torch.long
    with pytest.raises(EnergyHarnessError, match="dataset or a model"):
        make_batch(2)
    with pytest.raises(EnergyHarnessError, match="split must be"):
        make_batch(2, data=digits, split="valid")


def test_training_step_updates_a_copy_and_counts_samples():
    torch.manual_seed(0)
    model = build_model("lenet5")
    before = copy.deepcopy(model.state_dict())
    inputs, labels = make_batch(16, model_name="lenet5")
    step = training_step(model, inputs, labels)
    assert run_iterations(step, 2) == 32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    in_place = training_step(model, inputs, labels, copy_model=False)
    in_place()
    assert not torch.equal(before["fc1.weight"], model.fc1.weight)


def test_a_quantized_model_has_no_training_step():
    model = quantize_dynamic_int8(torch.nn.Sequential(torch.nn.Linear(4, 2)), ["Linear"])
    inputs, labels = torch.randn(2, 4), torch.zeros(2, dtype=torch.long)
    with pytest.raises(VariantUnsupported, match="inference only"):
        training_step(model, inputs, labels, variant="int8-dynamic")


@pytest.fixture
def meter():
    probe = ModelProbe()
    reason = probe.unavailable_reason()
    if reason:
        pytest.skip(f"model probe unavailable here: {reason}")
    with EnergyMeter([probe]) as started:
        yield started


@pytest.mark.parametrize("kind", ["inference", "training"])
def test_a_calibrated_window_lasts_the_minimum_and_gives_energy_per_sample(meter, kind):
    model = build_model("lenet5")
    inputs, labels = make_batch(32, model_name="lenet5")
    step = (
        inference_step(model, inputs)
        if kind == "inference"
        else training_step(model, inputs, labels)
    )
    min_window_s = max(meter.min_window_s, 0.2)
    iterations = calibrate_iterations(step, min_window_s, warmup_s=0.05)
    run = measure_workload(meter, kind, step, iterations, min_window_s=min_window_s)
    assert run.iterations >= iterations and run.samples == 32 * run.iterations
    assert run.duration_s >= min_window_s
    assert not run.measurement.warnings
    assert run.energy_j > 0 and run.measurement.total_source == "model"
    assert run.energy_per_sample_j == pytest.approx(run.energy_j / run.samples)
    assert run.samples_per_s == pytest.approx(run.samples / run.duration_s)
    assert meter.measurements[-1] is run.measurement


def test_a_window_that_ran_short_is_extended_to_the_minimum(meter):
    def step() -> int:
        time.sleep(0.02)
        return 3

    run = measure_workload(meter, "short", step, 1, min_window_s=0.15)
    assert run.duration_s >= 0.15
    assert run.iterations > 1 and run.samples == 3 * run.iterations


def test_measure_needs_at_least_one_iteration(meter):
    with pytest.raises(EnergyHarnessError, match="iterations must be >= 1"):
        measure_workload(meter, "none", lambda: 1, 0)
