"""The amdsmi probe against a fake `amdsmi` module: counters, power sampling, MI250 dies."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import sleep_window

from harness.measure.meter import EnergyMeter
from probes.amd_gpu import AmdSmiProbe
from probes.base import ProbeOptions

FAKE_DIR = Path(__file__).resolve().parents[1] / "fakes"


def make_fake_amdsmi(gpus: list, init_error: int | None = None) -> types.ModuleType:
    """A fresh copy of tests/fakes/amdsmi.py seeing `gpus` (FakeAmdGpu keyword dicts)."""
    spec = importlib.util.spec_from_file_location("fake_amdsmi", FAKE_DIR / "amdsmi.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fake_amdsmi"] = mod  # its dataclass looks its module up while defined
    spec.loader.exec_module(mod)
    mod.configure([mod.FakeAmdGpu(**g) for g in gpus], init_error)
    return mod


@pytest.fixture
def amd(monkeypatch):
    """Factory: amd(gpu dicts, init_error=None) installs the fake as `amdsmi`."""
    for name in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)

    def install(gpus: list, init_error: int | None = None) -> types.ModuleType:
        fake = make_fake_amdsmi(gpus, init_error)
        monkeypatch.setitem(sys.modules, "amdsmi", fake)
        return fake

    return install


def test_counter_power_and_miscounting_gpus_match_power_times_time(amd):
    amd(
        [
            {"uuid": "a1", "power_w": 400},  # a good counter
            {"uuid": "b2", "power_w": 150, "counter": False},  # power only
            {"uuid": "c3", "power_w": 300, "counter_scale": 40.0},  # firmware that miscounts
        ]
    )
    probe = AmdSmiProbe(ProbeOptions(sample_hz=50))
    m = sleep_window(probe, 0.6)  # 30 power samples, 600 counter updates
    for domain, power_w in [("gpu:0", 400), ("gpu:1", 150), ("gpu:2", 300)]:
        assert m.energy_of(domain) == pytest.approx(power_w * m.duration_s, rel=0.02), domain
    methods = {g["domain"]: g["energy_counter"] for g in probe.info()["gpus"]}
    assert methods == {"gpu:0": True, "gpu:1": False, "gpu:2": False}
    assert any("gpu:2" in w and "power is sampled instead" in w for w in probe.warnings())
    assert probe.info()["gpus"][0]["counter_resolution_uj"] == pytest.approx(15.259)
    assert m.total_energy_j == pytest.approx(850 * m.duration_s, rel=0.02)


def test_the_second_die_of_an_mi250_is_never_a_measurement(amd):
    amd(
        [
            {"uuid": "d0", "power_w": 420, "name": "AMD Instinct MI250X"},
            {"uuid": "d1", "power_w": 0, "name": "AMD Instinct MI250X"},
        ]
    )
    probe = AmdSmiProbe()
    assert [d.name for d in probe.domains()] == ["gpu:0"]
    assert "covers both dies" in probe.domains()[0].note
    (warning,) = probe.warnings()
    assert "gpu:1" in warning and "reports 0 W" in warning and "AMD SMI index 0" in warning
    m = sleep_window(probe, 0.4)
    assert m.energy_of("gpu:0") == pytest.approx(420 * m.duration_s, rel=0.02)


def test_only_the_zero_watt_die_visible_is_unavailable_and_names_its_partner(amd, monkeypatch):
    amd(
        [
            {"uuid": "d0", "power_w": 420, "name": "AMD Instinct MI250X"},
            {"uuid": "d1", "power_w": 0, "name": "AMD Instinct MI250X"},
        ]
    )
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    reason = AmdSmiProbe().unavailable_reason()
    assert reason is not None and "partner die (AMD SMI index 0)" in reason


def test_rocr_then_hip_visible_devices_pick_the_gpus_in_hip_order(amd, monkeypatch):
    amd([{"uuid": f"uuid-{i}", "power_w": 100 + 100 * i} for i in range(4)])
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "3,1,2")
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "2,0")  # of ROCR's list: physical 2, then 3
    probe = AmdSmiProbe()
    assert [(g["domain"], g["amdsmi_index"]) for g in probe.info()["gpus"]] == [
        ("gpu:0", 2),
        ("gpu:1", 3),
    ]
    monkeypatch.delenv("HIP_VISIBLE_DEVICES")
    monkeypatch.delenv("ROCR_VISIBLE_DEVICES")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "uuid-1")  # HIP honours it without HIP_...
    assert [g["amdsmi_index"] for g in AmdSmiProbe().info()["gpus"]] == [1]


def test_permission_denied_says_the_groups_to_join(amd):
    amd([{"uuid": "a", "power_w": 100}], init_error=10)
    reason = AmdSmiProbe().unavailable_reason()
    assert reason is not None and "render" in reason and "video" in reason


def test_a_binding_without_its_rocm_library_says_how_to_install_it(tmp_path, monkeypatch):
    package = tmp_path / "amdsmi"
    package.mkdir()
    (package / "__init__.py").write_text("print('no lib')\nraise KeyError('libamd_smi.so')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    reason = AmdSmiProbe().unavailable_reason()
    assert reason is not None and "libamd_smi.so" in reason and "ROCm" in reason
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # not installed at all
    assert "pip install" in AmdSmiProbe().unavailable_reason()


def test_a_counter_reset_mid_window_is_invalid(amd):
    fake = amd([{"uuid": "a", "power_w": 300}])
    probe = AmdSmiProbe()
    with EnergyMeter([probe]) as meter:
        meter.begin_window("w")
        time.sleep(0.1)
        ticks = fake.amdsmi_get_energy_count(fake.GPUS[0])["energy_accumulator"]
        fake.GPUS[0].offset_ticks = 100 - ticks  # a driver reload: the accumulator restarts
        m = meter.end_window("w")
    (d,) = m.domains
    assert d.energy_j is None and "reset" in d.invalid_reason


def test_a_counter_refused_at_start_is_said_by_the_meter_and_in_the_domain_note(amd):
    amd([{"uuid": "c3", "power_w": 300, "counter_scale": 40.0}])  # firmware that miscounts
    probe = AmdSmiProbe(ProbeOptions(sample_hz=50))
    assert probe.warnings() == []  # nothing is known before the check at start
    with EnergyMeter([probe]) as meter:
        with meter.window("w") as w:
            time.sleep(0.3)
    (warning,) = meter.started_warnings
    assert warning.startswith("amdsmi: gpu:0") and "its power is sampled instead" in warning
    (domain,) = w.measurement.domains
    assert "integrated power samples" in domain.note and "if it passes" not in domain.note
