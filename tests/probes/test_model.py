"""The modelled fallback probe on this machine, and its TDP lookup on a fake table."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.measure.meter import EnergyMeter
from probes.model import (
    DEFAULT_W_PER_THREAD,
    ModelProbe,
    codecarbon_cpu_table,
    cpu_model_name,
    lookup_tdp_w,
)


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_energy_is_cpu_time_times_power_per_thread():
    probe = ModelProbe()
    with EnergyMeter([probe]) as meter:
        with meter.window("busy") as w:
            cpu0 = time.process_time()
            busy(0.4)
            cpu_s = time.process_time() - cpu0
    m = w.measurement
    assert m.energy_of("cpu:model") == pytest.approx(cpu_s * probe.w_per_thread, rel=0.15)
    assert m.total_source == "model"
    assert all(d.source == "model" for d in m.domains)
    assert "TDP" in m.domains[0].note


def test_sleeping_costs_no_cpu_energy_but_ram_accrues():
    probe = ModelProbe()
    with EnergyMeter([probe]) as meter:
        with meter.window("sleep") as w:
            time.sleep(0.3)
    m = w.measurement
    assert m.energy_of("cpu:model") < 0.05 * probe.w_per_thread
    assert m.energy_of("ram:model") > 0


def test_child_processes_are_counted():
    probe = ModelProbe()
    code = "import time\nend=time.process_time()+0.5\nwhile time.process_time()<end: pass"
    with EnergyMeter([probe]) as meter:
        with meter.window("child") as w:
            subprocess.run([sys.executable, "-c", code], check=True)
    assert w.measurement.energy_of("cpu:model") >= 0.45 * probe.w_per_thread


def test_tdp_lookup_matches_whole_names_only(tmp_path):
    table = tmp_path / "cpu_power.csv"
    table.write_text("Name,TDP\nAMD EPYC 7763,280\nIntel Xeon Gold 6248,150\nXeon Gold 624,99\n")
    assert lookup_tdp_w("AMD EPYC 7763 64-Core Processor", table)[0] == 280
    tdp, where = lookup_tdp_w("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", table)
    assert tdp == 150 and "6248" in where
    assert lookup_tdp_w("AMD EPYC", table)[0] is None
    assert lookup_tdp_w("", table)[0] is None


def test_tdp_comes_from_the_table_or_the_documented_default():
    probe = ModelProbe()
    tdp_w, _ = lookup_tdp_w(cpu_model_name(), codecarbon_cpu_table())
    if tdp_w is None:  # e.g. this project's VMs report a bare "AMD EPYC"
        assert probe.w_per_thread == DEFAULT_W_PER_THREAD
        assert "default" in probe.tdp_source
    else:
        assert probe.tdp_w == tdp_w
    assert probe.info()["tdp_w"] == pytest.approx(probe.w_per_thread * probe.threads)
