"""measurements.csv rows from real windows over a fake powercap tree."""

from __future__ import annotations

import time

import pytest
from conftest import FakeZone

from harness.measure.meter import EnergyMeter
from harness.rows.measurements import measurement_rows, window_record
from harness.spec.case import Case
from probes.base import ProbeOptions
from probes.rapl import RaplProbe

CASE = Case("lenet5", "digits", "dense", (), "inference", 64, "cpu")


def test_rows_carry_the_invalid_reason_and_other_cpu_pct(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 10.0, offset_uj=50_000_000),
        FakeZone("intel-rapl:0:0", "dram", 4.0),
    ]
    tree = fake_powercap(zones)
    with EnergyMeter([RaplProbe(ProbeOptions(powercap_root=tree.root))]) as meter:
        meter.begin_window("w")
        time.sleep(0.3)
        tree.set_raw("intel-rapl:0", 10_000_000)  # 40 J backwards
        m = meter.end_window("w")
    rows = measurement_rows("run", CASE, 0, [window_record(m, iterations=3, samples=192)])
    by_domain = {r["domain"]: r for r in rows}
    package, dram = by_domain["cpu:package-0"], by_domain["cpu:dram-0"]
    assert package["valid"] is False and package["energy_j"] is None
    assert "went backwards" in package["invalid_reason"]
    assert package["note"] == package["invalid_reason"]
    assert dram["valid"] is True and dram["invalid_reason"] == ""
    assert dram["energy_j"] == pytest.approx(4 * m.duration_s, rel=0.03)
    assert dram["energy_j_per_sample"] == pytest.approx(dram["energy_j"] / 192)
    # the window's capacity (2+ CPUs x 0.3 s) is enough for a figure, in percent
    assert all(r["other_cpu_pct"] == m.other_cpu_pct for r in rows)
    assert m.other_cpu_pct is not None and 0 <= m.other_cpu_pct <= 100
