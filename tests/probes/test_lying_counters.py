"""Counters that lie (frozen, impossible jump, reset mid-window) give invalid readings with
their reason in the text and JSON of `measure` and in measurements.csv, never energy."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FakeZone

from harness.measure.meter import EnergyMeter
from harness.rows.columns import MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows
from harness.rows.measurements import measurement_rows, window_record
from harness.spec.case import Case
from probes.base import ProbeOptions
from probes.rapl import RaplProbe

CASE = Case("lenet5", "digits", "dense", (), "inference", 64, "cpu")
BIG_RANGE_UJ = 2**62  # a 64-bit-like counter, so that a petawatt jump fits in it
FAULTS = {
    # zone, what happens inside the window, words of the reason
    "frozen": (
        FakeZone("intel-rapl:0", "package-0", 0.0),
        None,
        "did not advance",
    ),
    "petawatt jump": (
        FakeZone("intel-rapl:0", "package-0", 10.0, max_range_uj=BIG_RANGE_UJ),
        10**18,  # 1e12 J within a second: about a petawatt
        "above the physical bound",
    ),
    "reset": (
        FakeZone("intel-rapl:0", "package-0", 10.0, offset_uj=200_000_000_000),
        5_000_000,  # back to 5 J: a driver reload, not a wrap of 262 kJ
        "reset",
    ),
}


def faulty_window(tree, fault: int | None, seconds: float = 0.8):
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    with EnergyMeter([probe]) as meter:
        meter.begin_window("w")
        time.sleep(seconds / 2)
        if fault is not None:
            tree.set_raw("intel-rapl:0", fault)
            tree.set_power("intel-rapl:0", 10.0)  # and it counts on from there
        time.sleep(seconds / 2)
        return meter.end_window("w")


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_an_invalid_reading_in_measurements_csv(fake_powercap, tmp_path, fault):
    zone, raw, words = FAULTS[fault]
    tree = fake_powercap([dataclasses.replace(zone)])  # a fresh zone per tree
    m = faulty_window(tree, raw)
    (domain,) = m.domains
    assert domain.energy_j is None, f"{fault} became {domain.energy_j} J"
    assert words in domain.invalid_reason
    path = tmp_path / "measurements.csv"
    out = CsvAppender(path, MEASUREMENT_COLUMNS)
    out.append_many(measurement_rows("run", CASE, 0, [window_record(m, 1, 64)]))
    out.close()
    (row,) = read_rows(path)
    assert row["energy_j"] == "" and row["valid"].lower() == "false"
    assert words in row["invalid_reason"]


def test_a_counter_that_moves_again_after_a_freeze_measures_again(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 0.0)])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    with EnergyMeter([probe]) as meter:
        with meter.window("frozen") as frozen:
            time.sleep(0.7)
        tree.set_power("intel-rapl:0", 20.0)
        time.sleep(0.05)
        probe.read()  # it moved: the reading after the freeze starts afresh
        with meter.window("moving") as moving:
            time.sleep(0.5)
    assert frozen.measurement.energy_of("cpu:package-0") is None
    energy_j = moving.measurement.energy_of("cpu:package-0")
    assert energy_j == pytest.approx(20 * moving.measurement.duration_s, rel=0.02)


def test_a_short_window_on_a_resting_counter_is_not_called_frozen(fake_powercap):
    # 0.5 s is 500 RAPL updates; a 0.1 s window of a still counter says nothing yet
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 0.0)])
    m = faulty_window(tree, None, seconds=0.1)
    assert m.energy_of("cpu:package-0") == 0.0


def run_measure(tree, fault: int | None, started: Path, *flags: str) -> subprocess.CompletedProcess:
    """`measure` over the fake tree; the fault happens once the measured command runs."""
    code = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(1.0)"
    args = ["measure", *flags, "--probe", "rapl", "--powercap-root", str(tree.root)]
    child = subprocess.Popen(
        [sys.executable, "-m", "harness", *args, "--", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    if fault is not None:
        tree.set_raw("intel-rapl:0", fault)
        tree.set_power("intel-rapl:0", 10.0)  # and it counts on from there
    stdout, stderr = child.communicate(timeout=120)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_measure_says_each_fault_in_text_and_json(fake_powercap, tmp_path, fault, as_json):
    zone, raw, words = FAULTS[fault]
    tree = fake_powercap([dataclasses.replace(zone)])  # a fresh zone per tree
    result = run_measure(tree, raw, tmp_path / "started", *(["--json"] if as_json else []))
    if as_json:
        (domain,) = json.loads(result.stdout)["domains"]
        assert domain["energy_j"] is None and words in domain["invalid_reason"]
        return
    said = " ".join((result.stdout + result.stderr).split())
    assert "cpu:package-0: INVALID:" in said and words in said
    assert "total: none over" in said and "nan" not in said  # no total, never `nan J`
    if fault == "frozen":  # the example of a frozen VM interface: never `0.0 J`
        assert "frozen energy interface" in said and "0.000" not in said
