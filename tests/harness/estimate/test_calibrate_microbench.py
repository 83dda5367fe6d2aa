"""Microbenchmarks measured through the meter with a fake constant-power probe."""

from __future__ import annotations

import time

import pytest
import torch

from harness.estimate.calibrate import fit_cases
from harness.estimate.microbench import (
    achieved_rates,
    plan_microbenchmarks,
    run_microbenchmarks,
)
from harness.measure.meter import EnergyMeter
from probes.base import SOURCE_COUNTER, Domain, Probe, Reading

POWER_W = 25.0


class ConstantPowerProbe(Probe):
    """Fake hardware: a counter that reads exactly POWER_W x elapsed time."""

    name = "fake"
    source = SOURCE_COUNTER

    def __init__(self) -> None:
        super().__init__()
        self.t0 = time.monotonic()

    def unavailable_reason(self) -> str | None:
        return None

    def domains(self) -> list[Domain]:
        return [Domain("fake:0", SOURCE_COUNTER, "cpu")]

    def read(self) -> Reading:
        now = time.monotonic()
        return Reading(now, {"fake:0": POWER_W * (now - self.t0)})


def test_microbenchmark_counts_follow_the_counting_rules():
    benches = {b.name: b for b in plan_microbenchmarks(torch.device("cpu"), small=True)}
    n = 128
    assert benches["matmul-fp32-128"].counts == {"flops_fp32": 2 * n**3, "bytes": 3 * n * n * 4}
    assert benches["copy-4MiB"].counts == {"bytes": 2 * 4 * 2**20}  # read source, write dest
    assert benches["matmul-fp32-128"].stresses == "flops_fp32"


def test_measured_windows_fit_the_fake_machines_constant_power():
    benches = plan_microbenchmarks(torch.device("cpu"), small=True)
    seen = []
    with EnergyMeter([ConstantPowerProbe()]) as meter:
        table = run_microbenchmarks(
            meter,
            torch.device("cpu"),
            benches,
            # windows of 0.1 s: a pause inside a read (a garbage collection, ~0.5 ms) moves
            # a window's power by the pause over its length, well under 1 % here
            seconds=0.1,
            idle_s=0.1,
            rounds=2,
            on_row=seen.append,
        )
    assert list(table["case"]) == ["idle", "matmul-fp32-128", "copy-4MiB"] * 2
    assert len(seen) == 6 and set(table["energy_source"]) == {"counter"}
    matmul = table[table["case"] == "matmul-fp32-128"]
    assert (matmul["calls"] >= 1).all()
    assert (matmul["flops_fp32"] == matmul["calls"] * 2 * 128**3).all()
    assert (table.loc[table["case"] == "idle", "flops_fp32"] == 0).all()
    assert (table["energy_j"] / table["duration_s"]).to_numpy() == pytest.approx(POWER_W, rel=0.01)
    fit = fit_cases(table)
    # Constant power whatever the work: the fit puts it all in static power.
    assert fit.coefficients["duration_s"] == pytest.approx(POWER_W, rel=0.02)
    assert fit.rms_residual_pct < 2
    rates = achieved_rates(table)
    assert set(rates) == {"flops_fp32", "bytes"} and all(r > 0 for r in rates.values())


def test_a_pause_during_the_timing_does_not_shrink_the_windows():
    from harness.estimate.microbench import Microbenchmark

    durations_s = iter([0.001, 0.001, 0.04] + [0.001] * 1000)  # the machine paused once

    def work() -> None:
        time.sleep(next(durations_s))

    bench = Microbenchmark("sleep", work, {}, "")
    with EnergyMeter([ConstantPowerProbe()]) as meter:
        table = run_microbenchmarks(meter, torch.device("cpu"), [bench], seconds=0.1, idle_s=0.01)
    calls = table.loc[table["case"] == "sleep", "calls"]
    # timed from its fastest call (1 ms and a little more): about 100 calls fill 0.1 s;
    # from the mean of the timed calls (the pause included) it would be about 7
    assert (calls > 40).all() and (calls <= 100).all()
