"""Phases marked by a measured command, heard by `measure` through its pipe, on a fake
powercap tree of known power (package 20 W + dram 5 W = 25 W in total)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.commands.measure import phase_lines
from harness.measure.meter import DomainEnergy, EnergyMeter, Measurement
from harness.measure.phases import PhaseEnergy
from harness.measure.probes import load_probes
from probes.base import ProbeOptions

TOTAL_W = 25.0
CHILD = """
import os, time
from harness import phase
time.sleep(0.2)
with phase("train"):
    with phase("epoch-1"):
        time.sleep(0.3)
    with phase("epoch-2"):
        time.sleep(0.3)
with phase("eval"):
    time.sleep(0.2)
    if os.environ.get("LEAVE_OPEN"):
        phase("never ended").__enter__()
        time.sleep(0.2)
"""


def _measure(tree, *flags: str, child: str = CHILD, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "measure",
            "--probe",
            "rapl",
            "--powercap-root",
            str(tree.root),
            *flags,
            "--",
            sys.executable,
            "-c",
            child,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_nested_phases_and_the_rest_add_up_to_the_total(fake_powercap):
    result = _measure(fake_powercap(), "--json", "--country", "FRA", "--pue", "1.2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    phases = {p["name"]: p for p in report["phases"]}
    assert [p["name"] for p in report["phases"]] == [
        "train",
        "epoch-1",
        "epoch-2",
        "eval",
        "(outside phases)",
    ]
    assert (phases["train"]["depth"], phases["epoch-1"]["depth"], phases["eval"]["depth"]) == (
        0,
        1,
        0,
    )
    top = [p for p in report["phases"] if p["depth"] == 0]
    assert sum(p["energy_j"] for p in top) == pytest.approx(report["total_energy_j"], rel=1e-9)
    assert sum(p["duration_s"] for p in top) == pytest.approx(report["duration_s"], rel=1e-9)
    epoch = phases["epoch-1"]
    assert epoch["energy_j"] == pytest.approx(TOTAL_W * epoch["duration_s"], rel=0.02)
    # a 0.3 s sleep, timed where the marks are heard: a late start mark can shorten it a little
    assert 0.27 <= epoch["duration_s"] < 0.6
    assert epoch["below_update_period"] is False  # 0.3 s against RAPL's 10 ms
    # train holds both epochs; equal when the counter did not move between their edges
    epochs_j = phases["epoch-1"]["energy_j"] + phases["epoch-2"]["energy_j"]
    assert phases["train"]["energy_j"] >= epochs_j * (1 - 1e-12)
    assert report["carbon"]["assumed"] is False and report["carbon"]["pue"] == 1.2
    co2 = report["total_energy_j"] / 3.6e6 * report["carbon"]["intensity_g_per_kwh"] * 1.2
    assert report["co2_g"] == pytest.approx(co2)


def test_a_phase_left_open_is_closed_at_exit_and_said(fake_powercap):
    result = _measure(fake_powercap(), LEAVE_OPEN="1")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if "never ended" in x)
    assert "not ended by the command: measured until it exited" in line
    assert "(outside phases)" in result.stderr
    assert "phases (measured energy, time;" in result.stderr  # RAPL's counters, said once
    assert "noise" not in line  # 0.2 s against RAPL's 10 ms
    assert "at FRA" not in result.stderr and "world average 475 g/kWh, assumed" in result.stderr


def test_measurement_co2_takes_an_intensity_or_a_setting(fake_powercap):
    from harness.rows.carbon import carbon_settings

    tree = fake_powercap()
    with EnergyMeter(load_probes(["rapl"], ProbeOptions(powercap_root=tree.root))) as meter:
        with meter.window("w") as w:
            import time

            time.sleep(0.2)
    m = w.measurement
    assert m.co2_g(475) == pytest.approx(m.total_energy_j / 3.6e6 * 475)
    setting = carbon_settings(intensity_g_per_kwh=100, pue=1.5)
    assert m.co2_g(setting) == pytest.approx(m.total_energy_j / 3.6e6 * 150)


def _phase(name: str, duration_s: float, source: str, depth: int = 0) -> PhaseEnergy:
    energy = DomainEnergy("probe", "cpu", source, "cpu", duration_s * TOTAL_W, True)
    m = Measurement(name, 0.0, duration_s, duration_s, (energy,), update_period_s=0.05)
    return PhaseEnergy(name, 1, depth, m)


def test_phase_lines_say_the_source_and_which_phases_are_noise() -> None:
    phases = [_phase("epoch", 0.2, "model"), _phase("eval", 0.01, "model")]
    total = _phase("whole", 1.0, "model").measurement
    header, epoch, evaluation, rest = phase_lines(total, phases)
    assert header.startswith("phases (MODELLED energy, time;")
    assert (
        "noise" not in epoch and "(noise: shorter than the counters' update period)" in evaluation
    )
    assert rest.split()[-2:] == ["0.790", "s"]  # the rest: 1 s less both phases

    mixed = [_phase("epoch", 0.2, "counter"), _phase("eval", 0.2, "model")]
    header, epoch, evaluation, rest = phase_lines(total, mixed)
    assert header.startswith("phases (energy, time;")  # no one source: each line says its own
    assert epoch.endswith("(measured)") and evaluation.endswith("(MODELLED)")
    assert rest.endswith("(MODELLED)")


def test_short_phases_are_said_once_in_text_and_each_in_json(fake_powercap):
    child = "from harness import phase\nfor i in range(3):\n with phase(f'step-{i}'):\n  pass\n"
    tree = fake_powercap()
    text = _measure(tree, child=child, COLUMNS="200")
    assert text.returncode == 0, text.stderr
    warnings = [x for x in text.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1  # not one per phase: their lines already say "noise"
    assert "3 of 3 phases lasted less than the counters' update period" in warnings[0]
    assert text.stderr.count("(noise: shorter than the counters' update period)") == 3
    report = json.loads(_measure(tree, "--json", child=child).stdout)
    assert sum("window 'phase step-" in w for w in report["warnings"]) == 3


def test_no_short_phase_note_when_every_phase_is_long_enough() -> None:
    from harness.commands.measure import short_phases_note

    assert short_phases_note([_phase("epoch", 0.2, "model")]) == []
    (note,) = short_phases_note([_phase("epoch", 0.2, "model"), _phase("eval", 0.01, "model")])
    assert note.startswith("1 of 2 phases lasted less than the counters' update period (50 ms)")
