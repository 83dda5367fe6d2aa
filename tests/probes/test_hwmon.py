"""The hwmon probe against fake sysfs trees written by a process: amd_energy counters,
Grace and ACPI power meters."""

from __future__ import annotations

import time

import pytest
from conftest import FakeZone, run_unprivileged, sleep_window

from harness.measure.meter import EnergyMeter
from probes.base import ProbeOptions
from probes.hwmon import HwmonProbe

H = "class/hwmon"


def amd_energy(sockets_w: list[float]) -> tuple[dict, dict]:
    """An amd_energy device: per-core counters first, then one per socket."""
    static, live = {f"{H}/hwmon2/name": "amd_energy"}, {}
    for core in range(2):
        static[f"{H}/hwmon2/energy{core + 1}_label"] = f"Ecore{core:03d}"
        live[f"{H}/hwmon2/energy{core + 1}_input"] = (1e9, 5e6)
    for socket, watts in enumerate(sockets_w):
        index = 3 + socket
        static[f"{H}/hwmon2/energy{index}_label"] = f"Esocket{socket}"
        live[f"{H}/hwmon2/energy{index}_input"] = (7e9, watts * 1e6)
    return static, live


def test_amd_energy_sockets_match_power_times_time(sysfs):
    tree = sysfs(*amd_energy([90.0, 110.0]))
    probe = HwmonProbe(ProbeOptions(sysfs_root=tree.root))
    m = sleep_window(probe, 0.5)
    assert [d.domain for d in m.domains] == ["cpu:socket-0", "cpu:socket-1"]
    assert m.energy_of("cpu:socket-0") == pytest.approx(90 * m.duration_s, rel=0.02)
    assert m.energy_of("cpu:socket-1") == pytest.approx(110 * m.duration_s, rel=0.02)
    assert m.total_energy_j == pytest.approx(200 * m.duration_s, rel=0.02)
    assert any("2 per-core counters" in s for s in probe.info()["skipped"])


def test_a_socket_rapl_reads_is_never_read_twice(sysfs, fake_powercap):
    tree = sysfs(*amd_energy([90.0, 110.0]))
    powercap = fake_powercap([FakeZone("intel-rapl:0", "package-0", 90.0)])
    options = ProbeOptions(sysfs_root=tree.root, powercap_root=powercap.root)
    probe = HwmonProbe(options)
    assert [d.name for d in probe.domains()] == ["cpu:socket-1"]
    assert any("read by the rapl probe as package-0" in s for s in probe.info()["skipped"])


def grace(device: str = f"{H}/hwmon1/device") -> tuple[dict, dict]:
    """A Grace power meter: module > grace > cpu, sysio (uW, averaged over 50 ms)."""
    static, live = {f"{H}/hwmon1/name": "power_meter"}, {}
    for index, (oem, watts) in enumerate(
        [("Module", 600.0), ("Grace", 250.0), ("CPU", 180.0), ("SysIO", 30.0)], start=1
    ):
        static[f"{device}/power{index}_oem_info"] = f"{oem} Power Socket 0"
        static[f"{device}/power{index}_average_interval"] = "50"
        live[f"{device}/power{index}_average"] = (watts * 1e6, 0.0)
    return static, live


def test_grace_sensors_nest_and_only_the_module_is_added(sysfs):
    tree = sysfs(*grace())
    probe = HwmonProbe(ProbeOptions(sysfs_root=tree.root, sample_hz=50))
    parents = {d.name: d.parent for d in probe.domains()}
    assert parents == {
        "node:module-0": None,
        "cpu:grace-0": "node:module-0",
        "cpu:cpu-0": "cpu:grace-0",
        "cpu:sysio-0": "cpu:grace-0",
    }
    assert probe.info()["sample_interval_s"] == pytest.approx(0.02)
    m = sleep_window(probe, 1.0)  # 50 samples, 20 averaging periods
    for domain, watts in [("node:module-0", 600), ("cpu:grace-0", 250), ("cpu:cpu-0", 180)]:
        assert m.energy_of(domain) == pytest.approx(watts * m.duration_s, rel=0.02), domain
    assert [d.domain for d in m.domains if d.in_total] == ["node:module-0"]
    assert m.total_energy_j == pytest.approx(600 * m.duration_s, rel=0.02)


def test_a_plain_acpi_power_meter_is_the_node(sysfs):
    static = {f"{H}/hwmon4/name": "power_meter", f"{H}/hwmon4/power1_average_interval": "100"}
    tree = sysfs(static, {f"{H}/hwmon4/power1_average": (350e6, 0.0)})
    probe = HwmonProbe(ProbeOptions(sysfs_root=tree.root, sample_hz=50))
    (domain,) = probe.domains()
    assert domain.name == "node:power-meter-hwmon4" and domain.scope == "node"
    assert probe.min_window_s == pytest.approx(0.1)
    m = sleep_window(probe, 2.0)  # 20 averaging periods
    assert m.total_energy_j == pytest.approx(350 * m.duration_s, rel=0.02)


def test_petawatt_jump_and_reset_of_an_energy_counter_are_invalid(sysfs):
    tree = sysfs(*amd_energy([100.0]))
    counter = f"{H}/hwmon2/energy3_input"
    probe = HwmonProbe(ProbeOptions(sysfs_root=tree.root))
    with EnergyMeter([probe]) as meter:
        meter.begin_window("jump")
        time.sleep(0.1)
        tree.set_value(counter, 1e18, rate_per_s=100e6)  # 1e12 J at once: petawatts
        jump = meter.end_window("jump")
        meter.begin_window("reset")
        time.sleep(0.1)
        tree.set_value(counter, 1000.0, rate_per_s=100e6)  # the driver reloaded
        reset = meter.end_window("reset")
        time.sleep(0.05)
        probe.read()  # counting again from here
        with meter.window("after") as after:
            time.sleep(0.3)
    assert "above the physical bound" in jump.domains[0].invalid_reason
    assert jump.domains[0].energy_j is None
    assert "reset" in reset.domains[0].invalid_reason and reset.domains[0].energy_j is None
    m = after.measurement
    assert m.energy_of("cpu:socket-0") == pytest.approx(100 * m.duration_s, rel=0.02)


def reason_as_user(root) -> str | None:
    return HwmonProbe(ProbeOptions(sysfs_root=root)).unavailable_reason()


def test_root_only_energy_files_give_the_permission_fix(sysfs):
    tree = sysfs(*amd_energy([100.0]))
    tree.root.chmod(0o755)
    for path in tree.root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o444)
    (tree.root / f"{H}/hwmon2/energy3_input").chmod(0)
    reason = run_unprivileged(reason_as_user, tree.root)
    assert reason is not None and "permission denied" in reason and "0444" in reason


def test_no_known_device_or_no_tree_says_why(sysfs, tmp_path):
    tree = sysfs({f"{H}/hwmon0/name": "nvme"}, {f"{H}/hwmon0/temp1_input": (40000, 0.0)})
    reason = HwmonProbe(ProbeOptions(sysfs_root=tree.root)).unavailable_reason()
    assert "amd_energy" in reason and "power_meter" in reason
    missing = HwmonProbe(ProbeOptions(sysfs_root=tmp_path / "none")).unavailable_reason()
    assert "no hwmon tree" in missing
