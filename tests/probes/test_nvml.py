"""The NVML probe against a fake `pynvml` module: GPUs with and without the energy counter."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import pytest

from harness.measure.meter import EnergyMeter
from probes.base import ProbeOptions
from probes.nvml import NvmlProbe

FAKE_DIR = Path(__file__).resolve().parents[1] / "fakes"


def make_fake_pynvml(gpus: list, init_error: str | None = None) -> types.ModuleType:
    """A fresh copy of tests/fakes/pynvml.py seeing `gpus` (FakeGpu from it, or tuples)."""
    spec = importlib.util.spec_from_file_location("fake_pynvml", FAKE_DIR / "pynvml.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fake_pynvml"] = mod  # its dataclass looks its module up while defined
    spec.loader.exec_module(mod)
    mod.configure([g if isinstance(g, mod.FakeGpu) else mod.FakeGpu(*g) for g in gpus], init_error)
    return mod


@pytest.fixture
def gpus(monkeypatch):
    devices = [("GPU-aaaa1111-0000", 300.0, True), ("GPU-bbbb2222-0000", 120.0, False)]
    fake = make_fake_pynvml(devices)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


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
    from harness.measure.meter import ShortWindowWarning

    probe = NvmlProbe()
    with EnergyMeter([probe]) as meter, pytest.warns(ShortWindowWarning, match="update period"):
        with meter.window("blink") as w:
            pass
    assert any("update period" in text for text in w.measurement.warnings)


def test_mig_selection_says_power_is_per_physical_gpu(gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4f5e6d7c-1111")
    reason = NvmlProbe().unavailable_reason()
    assert reason is not None and "per physical GPU" in reason


def test_mig_mode_gpu_is_flagged_in_the_domain_note(monkeypatch):
    devices = [("GPU-cccc", 200.0, True, True, True)]
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(devices))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (domain,) = NvmlProbe().domains()
    assert "MIG enabled" in domain.note and "whole physical GPU" in domain.note


def test_no_driver_is_unavailable_with_a_reason(monkeypatch):
    fake = make_fake_pynvml([], init_error="NVML Shared Library Not Found")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    reason = NvmlProbe().unavailable_reason()
    assert "NVML Shared Library Not Found" in reason and "driver" in reason


def test_a_gpu_with_neither_counter_nor_power_is_left_out_with_the_reason(monkeypatch):
    # a Jetson-class board next to a data-centre GPU: NotSupported for energy and power
    devices = [("GPU-jetson-0000", 10.0, False, False), ("GPU-dddd-0000", 300.0, True)]
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(devices))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    probe = NvmlProbe()
    assert probe.unavailable_reason() is None
    assert [d.name for d in probe.domains()] == ["gpu:1"]  # CUDA numbering kept
    (warning,) = probe.warnings()
    assert "gpu:0" in warning and "left out" in warning and "Not Supported" in warning
    with EnergyMeter([probe]) as meter:
        with meter.window("w") as w:
            time.sleep(0.3)
    m = w.measurement
    assert m.energy_of("gpu:1") == pytest.approx(300 * m.duration_s, rel=0.02)


def test_only_unsupported_gpus_make_the_probe_unavailable(monkeypatch):
    devices = [("GPU-jetson-0000", 10.0, False, False)]
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(devices))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    probe = NvmlProbe()
    reason = probe.unavailable_reason()
    assert reason is not None and "no visible GPU can be measured" in reason
    assert "Not Supported" in reason
    probe.start()  # never raises: the meter would not have it anyway
    probe.close()


def test_a_failing_read_makes_that_gpus_window_invalid_not_the_others(gpus):
    probe = NvmlProbe(ProbeOptions(sample_hz=50))
    with EnergyMeter([probe]) as meter:
        meter.begin_window("w")
        gpus.GPUS[0].counter = False  # the driver stops answering for gpu:0
        time.sleep(0.2)
        m = meter.end_window("w")
        gpus.GPUS[0].counter = True
        with meter.window("after") as w:
            time.sleep(0.3)
    assert m.energy_of("gpu:0") is None
    (bad,) = [d for d in m.domains if d.domain == "gpu:0"]
    assert "Not Supported" in bad.invalid_reason
    assert m.energy_of("gpu:1") == pytest.approx(120 * m.duration_s, rel=0.05)
    after = w.measurement
    assert after.energy_of("gpu:0") == pytest.approx(300 * after.duration_s, rel=0.02)


def test_mig_selection_is_a_warning_for_default_probes(gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4f5e6d7c-1111")
    (warning,) = NvmlProbe().warnings()
    assert "not measured" in warning and "MIG-4f5e6d7c-1111" in warning
