"""benchmarks.gpu_check: runs end to end without a GPU, and its GPU logic on a fake pynvml."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check import (
    QUICK,
    Context,
    Step,
    calibrate_against_suite,
    counter_vs_instant_power,
    integrate_power_j,
    measure_suite,
    observe_update_period,
    report_counter_vs_power,
)

REPO = Path(__file__).resolve().parents[2]
POWER_INSTANT = 186


class FakeGpu:
    """Constant power; the counter advances continuously or in steps of `update_period_s`;
    the instant-power field reads `instant_scale` x the true power."""

    def __init__(self, power_w: float, update_period_s: float = 0.0, instant_scale: float = 1.0):
        self.power_w, self.update_period_s = power_w, update_period_s
        self.instant_scale = instant_scale
        self.t0 = time.monotonic()

    def energy_mj(self) -> int:
        elapsed_s = time.monotonic() - self.t0
        if self.update_period_s:
            elapsed_s = math.floor(elapsed_s / self.update_period_s) * self.update_period_s
        return int(self.power_w * elapsed_s * 1000)


def make_fake_pynvml(gpus: list[FakeGpu], *, instant_field: bool = True) -> types.ModuleType:
    """The pynvml functions that the probe and the check call, over `gpus`."""
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def field_values(gpu: FakeGpu, ids: list[int]) -> list[types.SimpleNamespace]:
        assert ids == [POWER_INSTANT]
        value = types.SimpleNamespace(uiVal=int(gpu.power_w * gpu.instant_scale * 1000))
        return [
            types.SimpleNamespace(
                fieldId=POWER_INSTANT, scopeId=0, timestamp=0, latencyUsec=0,
                valueType=1, nvmlReturn=0, value=value,
            )
        ]  # fmt: skip

    mod.NVMLError = NVMLError
    mod.NVML_SUCCESS = 0
    mod.NVML_VALUE_TYPE_DOUBLE, mod.NVML_VALUE_TYPE_UNSIGNED_INT = 0, 1
    mod.nvmlInit = lambda: None
    mod.nvmlSystemGetDriverVersion = lambda: "580.00"
    mod.nvmlDeviceGetCount = lambda: len(gpus)
    mod.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    mod.nvmlDeviceGetUUID = lambda g: f"GPU-{id(g):x}"
    mod.nvmlDeviceGetName = lambda g: "Fake H200"
    mod.nvmlDeviceGetTotalEnergyConsumption = lambda g: g.energy_mj()
    mod.nvmlDeviceGetPowerUsage = lambda g: int(g.power_w * 1000)
    mod.nvmlDeviceGetMigMode = lambda g: (0, 0)
    if instant_field:
        mod.NVML_FI_DEV_POWER_INSTANT = POWER_INSTANT
        mod.nvmlDeviceGetFieldValues = field_values
    return mod


def busy() -> None:
    time.sleep(0.005)


def test_constant_power_counter_and_integrated_instant_power_agree():
    gpu = FakeGpu(300.0)
    result = counter_vs_instant_power(
        make_fake_pynvml([gpu]), gpu, duration_s=1.0, warmup_s=0.1, sample_hz=50, load=busy
    )
    window_s = result["window_s"]
    assert result["power_method"] == "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)"
    assert not result["power_fallback"]
    assert window_s == pytest.approx(1.0, abs=0.05)
    assert result["counter_energy_j"] == pytest.approx(300.0 * window_s, rel=0.01)
    assert result["integrated_power_energy_j"] == pytest.approx(300.0 * window_s, rel=0.01)
    assert result["ratio_counter_to_integrated"] == pytest.approx(1.0, abs=0.01)
    assert result["sample_rate_hz"] >= 20 and result["samples_bracket_window"]
    step = Step(3, "counter-vs-power", "", 0.0)
    report_counter_vs_power(step, result)
    assert step.status == "ok" and all(c["passed"] for c in step.checks)


def test_instant_power_reading_10_percent_high_fails_the_5_percent_check():
    gpu = FakeGpu(200.0, instant_scale=1.1)
    result = counter_vs_instant_power(
        make_fake_pynvml([gpu]), gpu, duration_s=0.5, warmup_s=0.05, sample_hz=50, load=busy
    )
    assert result["ratio_counter_to_integrated"] == pytest.approx(1 / 1.1, abs=0.01)
    step = Step(3, "counter-vs-power", "", 0.0)
    report_counter_vs_power(step, result)
    assert step.status == "failed"
    assert [c["passed"] for c in step.checks] == [True, False]


def test_without_the_instant_field_power_usage_is_used_and_said():
    gpu = FakeGpu(150.0)
    result = counter_vs_instant_power(
        make_fake_pynvml([gpu], instant_field=False),
        gpu,
        duration_s=0.5,
        warmup_s=0.05,
        sample_hz=40,
        load=busy,
    )
    assert result["power_fallback"]
    assert "nvmlDeviceGetPowerUsage" in result["power_method"]
    assert "NVML_FI_DEV_POWER_INSTANT" in result["power_method"]
    assert result["ratio_counter_to_integrated"] == pytest.approx(1.0, abs=0.02)


def test_update_period_of_a_counter_that_moves_every_100_ms():
    gpu = FakeGpu(250.0, update_period_s=0.1)
    result = observe_update_period(make_fake_pynvml([gpu]), gpu, poll_s=1.0, poll_hz=1000)
    assert result["update_period_s"] == pytest.approx(0.1, abs=0.01)
    assert result["median_update_interval_s"] == pytest.approx(0.1, abs=0.01)
    assert 9 <= result["counter_changes"] <= 11
    assert result["smallest_counter_step_j"] == pytest.approx(25.0, rel=0.01)
    assert result["poll_rate_hz"] > 300 and not result["counter_went_backwards"]


def test_integral_is_clipped_to_the_window_and_interpolated():
    samples = [(0.0, 100.0), (1.0, 200.0), (2.0, 200.0)]
    assert integrate_power_j(samples, 0.5, 1.5) == pytest.approx(0.5 * 175.0 + 0.5 * 200.0)
    assert integrate_power_j(samples, -1.0, 0.0) == pytest.approx(100.0)  # held before
    assert math.isnan(integrate_power_j([], 0.0, 1.0))


def test_cli_without_gpu_skips_gpu_steps_and_exits_0(tmp_path):
    """A machine without NVML (a pynvml whose init fails): skips with a reason, exit 0."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pynvml.py").write_text(
        "class NVMLError(Exception):\n    pass\n\n\n"
        "def nvmlInit():\n    raise NVMLError('NVML Shared Library Not Found')\n"
    )
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--quick", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(out.read_text())
    steps = {s["number"]: s for s in record["steps"]}
    assert record["status"] == "ok" and record["exit_code"] == 0 and record["quick"]
    for number in (1, 2, 3, 5, 6):
        assert steps[number]["status"] == "skipped"
        assert "no NVIDIA GPU/NVML on this machine" in steps[number]["reason"]
        assert "Shared Library Not Found" in steps[number]["reason"]
    assert {p["name"] for p in steps[1]["figures"]["probes"]} >= {"nvml", "model"}
    overhead = steps[4]
    assert overhead["status"] == "ok"
    assert overhead["figures"]["window_pair_us"]["model"]["median_us"] > 0
    assert overhead["figures"]["nvml"]["status"] == "skipped"
    assert done.stdout.count("skipped: no NVIDIA GPU/NVML on this machine") >= 5


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(
    cuda_available(),
    reason="a fake NVML next to a real CUDA device would measure one with the other",
)
def test_main_on_a_fake_gpu_runs_the_nvml_steps(monkeypatch, tmp_path):
    gpu = FakeGpu(300.0, update_period_s=0.02)
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([gpu]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    out = tmp_path / "check.json"
    assert gpu_check.main(["--quick", "--out", str(out)]) == 0
    steps = {s["name"]: s for s in json.loads(out.read_text())["steps"]}
    assert steps["probes"]["status"] == "ok"
    assert steps["probes"]["figures"]["gpus"][0]["energy_counter"] is True
    idle = steps["idle"]
    assert idle["status"] == "ok"
    assert idle["figures"]["measured_idle_power_w"]["gpu:0"] == pytest.approx(300.0, rel=0.05)
    assert idle["figures"]["counter_polling"]["update_period_s"] == pytest.approx(0.02, abs=0.005)
    assert "nvml" in steps["overhead"]["figures"]["window_pair_us"]
    for name in ("counter-vs-power", "gpu-suite", "calibrate"):
        assert steps[name]["status"] == "skipped"
        assert "no CUDA device" in steps[name]["reason"]


TINY_SUITE = """
[suite]
name = "plumbing"
dataset = "synthetic"
repetitions = 1
stable_max_other_cpu_pct = 100  # plumbing: a busy machine disturbs no window here
warmup_iterations = 1
min_window_s = 0.1
idle_baseline_s = 0.0
timeline_hz = 0.0
train_epochs = 0
finetune_epochs = 0
batch_sizes = [8]
devices = ["cpu"]
probes = ["nvml"]

[[models]]
name = "lenet5"
variants = ["dense", "semi-structured-2:4", { name = "magnitude", sparsity = 0.9 }]
"""


def test_suite_and_calibration_steps_on_a_cpu_suite_and_a_fake_gpu(monkeypatch, tmp_path):
    """Steps 5 and 6 on a tiny CPU suite measured by a fake 250 W GPU: energy is 250 W x
    duration, which the calibration fit must reproduce (static power only)."""
    gpu = FakeGpu(250.0)
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([gpu]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ctx = Context(budget=QUICK, run_dir=tmp_path, suite_probes=["nvml"])
    suite_step = Step(5, "gpu-suite", "", 0.0)
    measure_suite(ctx, suite_step, TINY_SUITE, counters_only=True)
    assert suite_step.status == "ok", suite_step.reason
    cases = {c["variant"]: c for c in suite_step.figures["cases"]}
    assert cases["semi-structured-2:4"]["status"] == "skipped"
    assert "CUDA" in cases["semi-structured-2:4"]["error"]
    for variant in ("dense", "magnitude[sparsity=0.9]"):
        case = cases[variant]
        assert case["status"] == "ok" and case["measured_source"] == "counter"
        measured = case["measured_energy_j_per_sample"]
        assert measured > 0
        assert case["measured_gpu_energy_j_per_sample"]["gpu:0"] == pytest.approx(measured)
        assert case["estimated_energy_j_per_sample_dense_hw"] > 0
        assert math.isfinite(case["estimate_error_pct"])
    calibrate_step = Step(6, "calibrate", "", 0.0)
    calibrate_against_suite(ctx, calibrate_step, "cpu")
    assert calibrate_step.status == "ok", calibrate_step.reason
    fit = calibrate_step.figures["microbenchmark_fit"]
    assert fit["coefficients"]["duration_s"] == pytest.approx(250.0, rel=0.01)
    rows = calibrate_step.figures["cases"]
    assert [r["case"] for r in rows] == [
        "lenet5/dense/inference/bs8/cpu",
        "lenet5/magnitude[sparsity=0.9]/inference/bs8/cpu",
    ]
    for r in rows:
        assert r["calibrated_error_pct"] == pytest.approx(0.0, abs=1.0)
        assert r["loo_pooled_error_pct"] == pytest.approx(0.0, abs=1.0)
    assert calibrate_step.figures["loo_suite_only"]["status"] == "skipped"
    json.dumps(gpu_check.finite(calibrate_step.figures), allow_nan=False)
