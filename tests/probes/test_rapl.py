"""The RAPL probe against fake powercap trees advancing at known power."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
from conftest import INTEL_ZONES, FakePowercap, FakeZone, run_unprivileged

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


@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")  # on purpose
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


def root_only(tree, *zone_ids: str) -> None:
    """Make these zones' counters readable by root only (mode 0000 denies everyone else)."""
    for zone_id in zone_ids:
        tree.zones[tree._index(zone_id)].path.joinpath("energy_uj").chmod(0)


def window_as_user(root, seconds: float):
    """Probe and one window, as a user whom root-only files refuse: plain figures back."""
    probe = RaplProbe(ProbeOptions(powercap_root=root))
    if probe.unavailable_reason() is not None:
        return {"reason": probe.unavailable_reason(), "warnings": probe.warnings()}
    _, m = measure(root, seconds)
    return {
        "reason": None,
        "warnings": probe.warnings(),
        "skipped": probe.info()["skipped"],
        "duration_s": m.duration_s,
        "domains": {
            d.domain: (d.energy_j, d.in_total, d.note, d.invalid_reason) for d in m.domains
        },
        "parents": {d.name: d.parent for d in probe.domains()},
        "total_j": m.total_energy_j,
    }


def test_permission_denied_everywhere_is_unavailable_with_the_admin_fix(fake_powercap):
    tree = fake_powercap()
    root_only(tree, *(z.zone_id for z in tree.zones))
    result = run_unprivileged(window_as_user, tree.root, 0.1)
    reason = result["reason"]
    assert reason is not None
    assert "energy_uj" in reason and "permission denied" in reason
    assert "udev" in reason and "sysfs.conf" in reason


def test_the_readme_sysfs_conf_example_measures_the_package(fake_powercap):
    # `mode class/powercap/intel-rapl:0/energy_uj = 0444`: the package only is readable
    zones = [FakeZone(z, n, p) for z, n, p in INTEL_ZONES] + [
        FakeZone("intel-rapl:1", "psys", 60.0)
    ]
    tree = fake_powercap(zones)
    root_only(tree, "intel-rapl:0:0", "intel-rapl:0:1", "intel-rapl:0:2", "intel-rapl:1")
    result = run_unprivileged(window_as_user, tree.root, 1.0)
    assert result["reason"] is None
    (energy_j, in_total, note, invalid) = result["domains"]["cpu:package-0"]
    assert list(result["domains"]) == ["cpu:package-0"]
    assert in_total and note == "RAPL intel-rapl:0" and not invalid
    assert energy_j == pytest.approx(20 * result["duration_s"], rel=0.02)
    assert result["parents"]["cpu:package-0"] is None  # psys is not read: package is a root
    assert len(result["warnings"]) == 4
    for zone_id in ("intel-rapl:0:0", "intel-rapl:0:1", "intel-rapl:0:2", "intel-rapl:1"):
        (line,) = [w for w in result["warnings"] if f"/{zone_id}/energy_uj" in w]
        assert "permission denied" in line and f"class/powercap/{zone_id}/energy_uj" in line


def test_a_root_only_psys_zone_leaves_package_and_dram_in_the_total(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 10.0),
        FakeZone("intel-rapl:0:0", "dram", 2.0),
        FakeZone("intel-rapl:1", "psys", 30.0),
    ]
    tree = fake_powercap(zones)
    root_only(tree, "intel-rapl:1")
    result = run_unprivileged(window_as_user, tree.root, 1.0)
    assert set(result["domains"]) == {"cpu:package-0", "cpu:dram-0"}
    assert all(in_total for _, in_total, _, _ in result["domains"].values())
    assert result["total_j"] == pytest.approx(12 * result["duration_s"], rel=0.02)
    (line,) = result["warnings"]
    assert "psys (intel-rapl:1) is left out" in line and "permission denied" in line


def test_a_subzone_without_energy_uj_is_left_out_with_a_warning(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 20.0),
        FakeZone("intel-rapl:0:0", "core", 12.0),
        FakeZone("intel-rapl:0:1", "dram", 5.0, counter=False),
    ]
    tree = fake_powercap(zones)
    probe, m = measure(tree.root, 1.0)
    assert [d.domain for d in m.domains] == ["cpu:core-0", "cpu:package-0"]
    assert m.total_energy_j == pytest.approx(20 * m.duration_s, rel=0.02)
    (line,) = probe.warnings()
    assert "dram (intel-rapl:0:1) is left out" in line
    assert "intel-rapl:0:1/energy_uj" in line and "does not exist" in line


def test_an_unreadable_msr_zone_is_read_through_its_mmio_twin(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 15.0),
        FakeZone("intel-rapl:0:0", "core", 9.0),
        FakeZone("intel-rapl-mmio:0", "package-0", 15.0),
    ]
    tree = fake_powercap(zones)
    root_only(tree, "intel-rapl:0")
    result = run_unprivileged(window_as_user, tree.root, 1.0)
    assert result["warnings"] == []
    energy_j, in_total, note, _ = result["domains"]["cpu:package-0"]
    assert note == "RAPL intel-rapl-mmio:0" and in_total
    assert energy_j == pytest.approx(15 * result["duration_s"], rel=0.02)
    assert result["parents"]["cpu:core-0"] == "cpu:package-0"  # core stays inside it
    assert any(s.startswith("intel-rapl:0 (package-0): cannot be read") for s in result["skipped"])


def test_multi_die_packages_get_a_domain_per_die_and_count_each_once(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0-die-0", 20.0),
        FakeZone("intel-rapl:0:0", "core", 11.0),
        FakeZone("intel-rapl:0:1", "dram", 4.0),
        FakeZone("intel-rapl:1", "package-0-die-1", 25.0),
        FakeZone("intel-rapl:1:0", "core", 13.0),
        FakeZone("intel-rapl:1:1", "dram", 7.0),
    ]
    tree = fake_powercap(zones)
    probe, m = measure(tree.root, 1.0)
    by_name = {d.domain: d for d in m.domains}
    assert set(by_name) == {
        "cpu:package-0-die-0",
        "cpu:core-0-die-0",
        "cpu:dram-0-die-0",
        "cpu:package-0-die-1",
        "cpu:core-0-die-1",
        "cpu:dram-0-die-1",
    }
    assert len(m.domains) == 6  # never two rows with one name
    for name, power_w in [("cpu:dram-0-die-0", 4), ("cpu:dram-0-die-1", 7)]:
        assert by_name[name].energy_j == pytest.approx(power_w * m.duration_s, rel=0.02)
    parents = {d.name: d.parent for d in probe.domains()}
    assert parents["cpu:core-0-die-1"] == "cpu:package-0-die-1"
    dram_j = sum(d.energy_j for d in m.domains if d.scope == "dram" and d.in_total)
    assert dram_j == pytest.approx(11 * m.duration_s, rel=0.02)
    assert m.total_energy_j == pytest.approx((20 + 4 + 25 + 7) * m.duration_s, rel=0.02)


@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")  # on purpose
def test_a_negative_counter_is_an_invalid_reading_never_energy(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 10.0)])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    with EnergyMeter([probe]) as meter:
        tree.set_raw("intel-rapl:0", -1_000_000)
        meter.begin_window("glitch")
        tree.set_raw("intel-rapl:0", 2_000_000)
        glitch = meter.end_window("glitch")
        tree.set_power("intel-rapl:0", 10.0)
        with meter.window("after") as w:
            time.sleep(0.5)
    (d,) = glitch.domains
    assert d.energy_j is None  # not the 3 J from -1 J to 2 J
    assert "'-1000000'" in d.invalid_reason and "unsigned" in d.invalid_reason
    after = w.measurement
    assert after.energy_of("cpu:package-0") == pytest.approx(10 * after.duration_s, rel=0.03)


@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")  # on purpose
def test_a_non_integer_counter_is_an_invalid_reading(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 10.0)])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    with EnergyMeter([probe]) as meter:
        meter.begin_window("w")
        tree.set_text("intel-rapl:0", "12.5e6")
        m = meter.end_window("w")
    (d,) = m.domains
    assert d.energy_j is None and "'12.5e6'" in d.invalid_reason
    assert math.isnan(m.total_energy_j)


def test_missing_tree_and_env_root(tmp_path, monkeypatch, fake_powercap):
    reason = RaplProbe(ProbeOptions(powercap_root=tmp_path / "nowhere")).unavailable_reason()
    assert "nowhere" in reason
    tree = fake_powercap()
    monkeypatch.setenv(ENV_ROOT, str(tree.root))
    probe = RaplProbe()
    assert probe.unavailable_reason() is None
    assert probe.root == tree.root


@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")
def test_a_counter_that_wraps_faster_than_polling_is_invalid_not_undercounted(fake_powercap):
    # 100,000 uJ at 20 W wraps every 5 ms (0.1 ms at the assumed 1000 W): no poll keeps up
    fast = FakeZone("intel-rapl:0", "package-0", 20.0, max_range_uj=100_000)
    tree = fake_powercap([fast, FakeZone("intel-rapl:0:0", "dram", 5.0)])
    probe, m = measure(tree.root, 1.0)
    package = next(d for d in m.domains if d.domain == "cpu:package-0")
    assert package.energy_j is None
    assert "wraps at 100000 uJ (max_energy_range_uj), every 0.1 ms at up to 1000 W" in (
        package.invalid_reason
    )
    assert math.isnan(m.total_energy_j)  # never a silent 13 J for 20 J
    assert m.energy_of("cpu:dram-0") == pytest.approx(5 * m.duration_s, rel=0.02)
    assert any("faster than the 5 ms polling can follow" in w for w in probe.warnings())


def test_a_fifo_counter_is_left_out_with_why_and_never_hangs(tmp_path):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 20.0),
        FakeZone("intel-rapl:0:0", "dram", 5.0, counter=False),
    ]
    tree = FakePowercap(tmp_path, zones)  # not started: nothing writes the FIFO
    os.mkfifo(zones[1].path / "energy_uj")
    result = subprocess.run(
        [sys.executable, "-m", "harness", "probes", "--powercap-root", str(tree.root)],
        capture_output=True,
        text=True,
        timeout=60,  # before: blocked in open() for ever
    )
    assert result.returncode == 0, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert "rapl: dram (intel-rapl:0:0) is left out: cannot read" in said
    assert "is not a regular file (a FIFO, socket or device)" in said
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    assert [d.name for d in probe.domains()] == ["cpu:package-0"]
