"""The jetson probe against INA3221 sysfs trees written by a process, in both layouts."""

from __future__ import annotations

import os

import pytest
from conftest import sleep_window

from probes.base import ProbeOptions
from probes.jetson import JetsonProbe

HWMON = "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
IIO = "bus/i2c/drivers/ina3221x/6-0040/iio:device0"


def hwmon_rails(rails: list[tuple[str, float, float]], interval_ms: str = "20"):
    """An ina3221 hwmon folder: (label, mA, mV) per channel, and its update interval."""
    static = {f"{HWMON}/name": "ina3221", f"{HWMON}/update_interval": interval_ms}
    live = {}
    for index, (label, milliamps, millivolts) in enumerate(rails, start=1):
        static[f"{HWMON}/in{index}_label"] = label
        live[f"{HWMON}/curr{index}_input"] = (milliamps, 0.0)
        live[f"{HWMON}/in{index}_input"] = (millivolts, 0.0)
    return static, live


def test_orin_hwmon_layout_input_rail_is_the_total(sysfs):
    rails = [("VDD_IN", 1500, 5000), ("VDD_CPU_GPU_CV", 400, 5000), ("VDD_SOC", 300, 5000)]
    tree = sysfs(*hwmon_rails(rails))
    (tree.root / "class/hwmon").mkdir(parents=True)
    os.symlink(tree.root / HWMON, tree.root / "class/hwmon/hwmon3")  # the same device twice
    probe = JetsonProbe(ProbeOptions(sysfs_root=tree.root, sample_hz=20))
    assert probe.info()["layout"] == "hwmon"
    assert probe.sample_interval_s() == pytest.approx(0.01)  # twice per 20 ms update
    parents = {d.name: d.parent for d in probe.domains()}
    assert parents == {
        "soc:VDD_IN": None,
        "soc:VDD_CPU_GPU_CV": "soc:VDD_IN",
        "soc:VDD_SOC": "soc:VDD_IN",
    }
    m = sleep_window(probe, 1.0)  # 50 updates
    for domain, watts in [("soc:VDD_IN", 7.5), ("soc:VDD_CPU_GPU_CV", 2.0), ("soc:VDD_SOC", 1.5)]:
        assert m.energy_of(domain) == pytest.approx(watts * m.duration_s, rel=0.02), domain
    assert [d.domain for d in m.domains if d.in_total] == ["soc:VDD_IN"]
    assert m.total_energy_j == pytest.approx(7.5 * m.duration_s, rel=0.02)


def test_nano_iio_layout_with_power_or_current_times_voltage(sysfs):
    static = {
        f"{IIO}/rail_name_0": "POM_5V_IN",
        f"{IIO}/rail_name_1": "POM_5V_GPU",
        f"{IIO}/rail_name_2": "POM_5V_CPU",
    }
    live = {
        f"{IIO}/in_power0_input": (5000, 0.0),  # mW
        f"{IIO}/in_power1_input": (1200, 0.0),
        f"{IIO}/in_current2_input": (400, 0.0),  # no power file: mA x mV
        f"{IIO}/in_voltage2_input": (5000, 0.0),
    }
    tree = sysfs(static, live)
    probe = JetsonProbe(ProbeOptions(sysfs_root=tree.root, sample_hz=50))
    assert probe.info()["layout"] == "iio"
    m = sleep_window(probe, 1.2)  # 24 updates of 50 ms
    for domain, watts in [("soc:POM_5V_IN", 5.0), ("soc:POM_5V_GPU", 1.2), ("soc:POM_5V_CPU", 2)]:
        assert m.energy_of(domain) == pytest.approx(watts * m.duration_s, rel=0.02), domain
    assert m.total_energy_j == pytest.approx(5.0 * m.duration_s, rel=0.02)


def test_without_an_input_rail_the_rails_are_added_with_a_warning(sysfs):
    rails = [("VDD_GPU_SOC", 2000, 5000), ("VDD_CPU_CV", 800, 5000), ("NC", 0, 0)]
    tree = sysfs(*hwmon_rails(rails))
    probe = JetsonProbe(ProbeOptions(sysfs_root=tree.root))
    assert [d.name for d in probe.domains()] == ["soc:VDD_GPU_SOC", "soc:VDD_CPU_CV"]
    (warning,) = probe.warnings()
    assert "no board input rail" in warning
    m = sleep_window(probe, 0.5)
    assert m.total_energy_j == pytest.approx(14.0 * m.duration_s, rel=0.02)


def test_not_a_jetson_says_why(tmp_path):
    reason = JetsonProbe(ProbeOptions(sysfs_root=tmp_path)).unavailable_reason()
    assert reason is not None and "no INA3221 power monitor" in reason
