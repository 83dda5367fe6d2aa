"""The RAPL probe against fake powercap trees advancing at known power."""

from __future__ import annotations

import math
import pathlib
import time

import pytest
from conftest import FakeZone

from harness.measure.meter import EnergyMeter
from probes.base import ProbeOptions
from probes.rapl import ENV_ROOT, RaplProbe


def measure(root, seconds: float, **options):
    probe = RaplProbe(ProbeOptions(powercap_root=root, **options))
    assert probe.unavailable_reason() is None, probe.unavailable_reason()
    with EnergyMeter([probe]) as meter:
        with meter.window("w") as w:
            time.sleep(seconds)
    return probe, w.measurement


def test_intel_package_dram_and_children_match_power_times_time(fake_powercap):
    tree = fake_powercap()
    probe, m = measure(tree.root, 1.0)
    names = {d.domain: d for d in m.domains}
    assert set(names) == {"cpu:package-0", "cpu:core-0", "cpu:uncore-0", "cpu:dram-0"}
    for domain, power_w in [("cpu:package-0", 20), ("cpu:core-0", 12), ("cpu:dram-0", 5)]:
        assert names[domain].energy_j == pytest.approx(power_w * m.duration_s, rel=0.02)
        assert names[domain].source == "counter"
    # package holds core and uncore; dram is separate: total = package + dram
    assert {d.domain for d in m.domains if d.in_total} == {"cpu:package-0", "cpu:dram-0"}
    assert m.total_energy_j == pytest.approx(25 * m.duration_s, rel=0.02)
    assert m.total_source == "counter"


def test_nested_sysfs_layout_is_found(fake_powercap):
    tree = fake_powercap(layout="nested")
    probe, m = measure(tree.root, 1.0)
    assert m.energy_of("cpu:dram-0") == pytest.approx(5 * m.duration_s, rel=0.02)
    assert len(m.domains) == 4


def test_several_wraps_in_one_window(fake_powercap):
    # 4 J range at 10 W wraps every 0.4 s; a 1.3 s window holds three wraps.
    zone = FakeZone(
        "intel-rapl:0",
        "package-0",
        10.0,
        max_range_uj=4_000_000,
        offset_uj=3_900_000,
        max_power_uw=20_000_000,
    )
    tree = fake_powercap([zone])
    probe, m = measure(tree.root, 1.3)
    assert probe.poll_interval_s == pytest.approx(4.0 / 80.0 / 2)  # range / (4 x 20 W) / 2
    assert m.energy_of("cpu:package-0") == pytest.approx(10 * m.duration_s, rel=0.02)


def test_counter_going_backwards_without_possible_wrap_is_invalid(fake_powercap):
    zone = FakeZone("intel-rapl:0", "package-0", 10.0, offset_uj=50_000_000)
    tree = fake_powercap([zone])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    with EnergyMeter([probe]) as meter:
        meter.begin_window("w")
        tree.set_raw("intel-rapl:0", 10_000_000)  # 40 J backwards, a wrap would be 262 kJ
        m = meter.end_window("w")
    d = m.domains[0]
    assert d.energy_j is None
    assert "went backwards" in d.invalid_reason
    assert math.isnan(m.total_energy_j)


def test_mmio_twin_is_counted_once(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 15.0),
        FakeZone("intel-rapl-mmio:0", "package-0", 15.0),
    ]
    tree = fake_powercap(zones)
    probe, m = measure(tree.root, 1.0)
    assert [d.domain for d in m.domains] == ["cpu:package-0"]
    assert m.total_energy_j == pytest.approx(15 * m.duration_s, rel=0.02)
    assert any("intel-rapl-mmio:0" in s for s in probe.info()["skipped"])


def test_psys_covers_package_and_dram(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 10.0),
        FakeZone("intel-rapl:0:0", "dram", 2.0),
        FakeZone("intel-rapl:1", "psys", 30.0),
    ]
    tree = fake_powercap(zones)
    probe, m = measure(tree.root, 1.0)
    assert {d.domain for d in m.domains if d.in_total} == {"cpu:psys"}
    assert m.total_energy_j == pytest.approx(30 * m.duration_s, rel=0.02)


def test_amd_layout_package_and_core_without_dram(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 40.0),
        FakeZone("intel-rapl:0:0", "core", 30.0),
        FakeZone("intel-rapl:1", "package-1", 35.0),
        FakeZone("intel-rapl:1:0", "core", 25.0),
    ]
    tree = fake_powercap(zones)
    probe, m = measure(tree.root, 1.0)
    assert {d.domain for d in m.domains} == {
        "cpu:package-0",
        "cpu:core-0",
        "cpu:package-1",
        "cpu:core-1",
    }
    assert m.total_energy_j == pytest.approx(75 * m.duration_s, rel=0.02)


def test_permission_denied_is_unavailable_with_the_admin_fix(fake_powercap, monkeypatch):
    tree = fake_powercap()
    energy_file = tree.root / "intel-rapl:0" / "energy_uj"
    real_read_text = pathlib.Path.read_text

    def kernel_says_no(self, *args, **kwargs):  # root reads any file: fake the kernel's answer
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", kernel_says_no)
    reason = RaplProbe(ProbeOptions(powercap_root=tree.root)).unavailable_reason()
    assert reason is not None
    assert "energy_uj" in reason and "permission denied" in reason
    assert "udev" in reason and "sysfs.conf" in reason
    assert energy_file.exists()


def test_missing_tree_and_env_root(tmp_path, monkeypatch, fake_powercap):
    reason = RaplProbe(ProbeOptions(powercap_root=tmp_path / "nowhere")).unavailable_reason()
    assert "nowhere" in reason
    tree = fake_powercap()
    monkeypatch.setenv(ENV_ROOT, str(tree.root))
    probe = RaplProbe()
    assert probe.unavailable_reason() is None
    assert probe.root == tree.root
