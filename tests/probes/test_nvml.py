"""The NVML probe against a fake `pynvml` module: GPUs with and without the energy counter."""

from __future__ import annotations

import sys
import time
import types

import pytest

from harness.measure.meter import EnergyMeter
from probes.base import ProbeOptions
from probes.nvml import NvmlProbe


class FakeGpu:
    def __init__(self, uuid: str, power_w: float, counter: bool, mig: bool = False):
        self.uuid, self.power_w, self.counter, self.mig = uuid, power_w, counter, mig
        self.t0 = time.monotonic()


def make_fake_pynvml(gpus: list[FakeGpu], init_error: str | None = None) -> types.ModuleType:
    """A module with the pynvml functions the probe calls; power is constant per GPU."""
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    mod.NVMLError = NVMLError

    def init():
        if init_error:
            raise NVMLError(init_error)

    def total_energy_mj(gpu):
        if not gpu.counter:
            raise NVMLError("Not Supported")
        return int(gpu.power_w * (time.monotonic() - gpu.t0) * 1000)

    mod.nvmlInit = init
    mod.nvmlSystemGetDriverVersion = lambda: "555.42"
    mod.nvmlDeviceGetCount = lambda: len(gpus)
    mod.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    mod.nvmlDeviceGetUUID = lambda g: g.uuid
    mod.nvmlDeviceGetName = lambda g: "Fake H200"
    mod.nvmlDeviceGetTotalEnergyConsumption = total_energy_mj
    mod.nvmlDeviceGetPowerUsage = lambda g: int(g.power_w * 1000)
    mod.nvmlDeviceGetMigMode = lambda g: (int(g.mig), int(g.mig))
    return mod


@pytest.fixture
def gpus(monkeypatch):
    devices = [
        FakeGpu("GPU-aaaa1111-0000", 300.0, counter=True),
        FakeGpu("GPU-bbbb2222-0000", 120.0, counter=False),
    ]
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(devices))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return devices


def test_counter_and_sampled_gpus_match_power_times_time(gpus):
    probe = NvmlProbe(ProbeOptions(sample_hz=50))
    assert probe.unavailable_reason() is None
    assert [d.name for d in probe.domains()] == ["gpu:0", "gpu:1"]
    assert "energy counter" in probe.domains()[0].note
    assert "integrated power samples" in probe.domains()[1].note
    with EnergyMeter([probe]) as meter:
        with meter.window("w") as w:
            time.sleep(0.5)
    m = w.measurement
    assert m.energy_of("gpu:0") == pytest.approx(300 * m.duration_s, rel=0.02)
    assert m.energy_of("gpu:1") == pytest.approx(120 * m.duration_s, rel=0.02)
    assert m.total_energy_j == pytest.approx(420 * m.duration_s, rel=0.02)


def test_cuda_visible_devices_by_index_and_uuid_prefix(gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    probe = NvmlProbe()
    info = probe.info()["gpus"]
    assert [(g["domain"], g["nvml_index"]) for g in info] == [("gpu:0", 1)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb,GPU-aaaa")
    info = NvmlProbe().info()["gpus"]
    assert [(g["domain"], g["nvml_index"]) for g in info] == [("gpu:0", 1), ("gpu:1", 0)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,7,1")  # CUDA stops at the invalid 7
    assert [g["nvml_index"] for g in NvmlProbe().info()["gpus"]] == [0]


def test_short_window_is_warned_about(gpus):
    probe = NvmlProbe()
    with EnergyMeter([probe]) as meter:
        with meter.window("blink") as w:
            pass
    assert any("update period" in text for text in w.measurement.warnings)


def test_mig_selection_says_power_is_per_physical_gpu(gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4f5e6d7c-1111")
    reason = NvmlProbe().unavailable_reason()
    assert reason is not None and "per physical GPU" in reason


def test_mig_mode_gpu_is_flagged_in_the_domain_note(monkeypatch):
    devices = [FakeGpu("GPU-cccc", 200.0, counter=True, mig=True)]
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(devices))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (domain,) = NvmlProbe().domains()
    assert "MIG enabled" in domain.note and "whole physical GPU" in domain.note


def test_no_driver_is_unavailable_with_a_reason(monkeypatch):
    fake = make_fake_pynvml([], init_error="NVML Shared Library Not Found")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    reason = NvmlProbe().unavailable_reason()
    assert "NVML Shared Library Not Found" in reason and "driver" in reason
