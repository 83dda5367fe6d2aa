"""The tracker on a fake powercap tree of known power (package 20 W + dram 5 W = 25 W)."""

from __future__ import annotations

import csv
import time

import pytest

import harness
from harness.integrations.rundir import phase_kind
from harness.report.page import write_report

TOTAL_W = 25.0  # the fake tree's package (20 W) and dram (5 W): the domains a total adds


def _track(tree, out, **options):
    lines: list[str] = []
    tracker = harness.track(
        "loop",
        out=out,
        probes=["rapl"],
        powercap_root=tree.root,
        say=lines.append,
        **{"timeline_hz": 5, **options},
    )
    return tracker, lines


def test_epochs_sum_to_the_whole_window_and_to_power_times_time(fake_powercap, tmp_path, steady_gc):
    tracker, lines = _track(fake_powercap(), tmp_path / "run", epochs=5)
    with tracker:
        for epoch in range(1, 6):
            with harness.phase(f"epoch-{epoch}", samples=100):
                time.sleep(1.0)  # long beside the ~1 ms between phases (10 when loaded)
    epochs = [p for p in tracker.phases if p.kind == "epoch"]
    assert [p.repetition for p in epochs] == [0, 1, 2, 3, 4]
    energy_j = sum(p.energy_j for p in epochs)
    assert energy_j == pytest.approx(tracker.whole.energy_j, rel=0.01)
    assert energy_j == pytest.approx(TOTAL_W * sum(p.duration_s for p in epochs), rel=0.02)
    assert epochs[0].energy_j_per_sample == pytest.approx(epochs[0].energy_j / 100)
    # the prediction after epoch 1 of 5, at constant power, is within 10 % of the actual
    assert tracker.prediction.epochs_done == 1
    assert tracker.prediction.energy_j == pytest.approx(energy_j, rel=0.10)
    assert lines[0].startswith("predicted for 5 epochs (after 1): ")
    assert lines[-2].startswith("loop: ") and "world average 475 g/kWh, assumed" in lines[-2]
    assert str(tmp_path / "run") in lines[-2]
    assert lines[-1].startswith("predicted ") and "actual" in lines[-1]


def test_the_run_directory_is_a_suite_runs_format(fake_powercap, tmp_path):
    tracker, _ = _track(fake_powercap(), tmp_path / "run", country="FRA", pue=1.2)
    with tracker:
        for _ in range(3):
            with harness.phase("epoch", samples=10):
                time.sleep(0.1)
        with harness.phase("eval"):
            time.sleep(0.1)
    run = tmp_path / "run"
    rows = list(csv.DictReader(open(run / "measurements.csv")))
    epoch_rows = [r for r in rows if r["variant"] == "epoch"]
    assert {r["repetition"] for r in epoch_rows} == {"0", "1", "2"}
    assert {r["domain"] for r in epoch_rows} >= {"cpu:package-0", "cpu:dram-0"}
    cases = {r["variant"]: r for r in csv.DictReader(open(run / "cases.csv"))}
    assert list(cases) == ["whole", "epoch", "eval"]
    assert cases["epoch"]["n"] == "3"
    per_sample = float(cases["epoch"]["energy_j_per_sample_mean"])
    assert per_sample == pytest.approx(TOTAL_W * 0.1 / 10, rel=0.05)
    assert float(cases["epoch"]["pue"]) == 1.2
    assert (run / "power_timeline.csv").stat().st_size > 0
    assert (run / "environment.json").is_file() and (run / "run.json").is_file()
    assert write_report(run).is_file()


def test_without_a_tracker_or_a_parent_a_phase_costs_nothing(monkeypatch):
    monkeypatch.delenv("ENERGY_HARNESS_PHASE_FD", raising=False)
    from harness.measure import phases

    monkeypatch.setattr(phases, "_fd_read", False)
    started = time.perf_counter()
    for _ in range(10_000):
        with harness.phase("step"):
            pass
    per_phase_s = (time.perf_counter() - started) / 10_000
    assert phases._fd is None and not phases._listeners
    assert per_phase_s < 50e-6  # a generous bound: two global checks, no reading


def test_phase_kinds():
    assert phase_kind("epoch-3") == "epoch"
    assert phase_kind("eval_12") == "eval"
    assert phase_kind("warm up") == "warm up"
    assert phase_kind("7") == "7"


def test_a_short_phase_warns_at_the_users_line(fake_powercap, tmp_path):
    tracker, _ = _track(fake_powercap(), tmp_path / "run", timeline_hz=0)
    with tracker, pytest.warns(Warning) as caught:
        with harness.phase("tiny"):
            pass
    short = [w for w in caught if "shorter than" in str(w.message)]
    assert short and short[0].filename == __file__


def test_compare_and_merge_read_tracked_runs(fake_powercap, tmp_path):
    from harness.report.compare import compare_runs
    from harness.rows.merge import merge_runs

    tree = fake_powercap()
    for name, out in (("loop", "a"), ("loop", "b"), ("other", "c")):
        tracker, _ = _track(tree, tmp_path / out, timeline_hz=0)
        tracker.name = tracker._columns["model"] = name
        with tracker:
            for _ in range(3):
                with harness.phase("epoch", samples=10):
                    time.sleep(0.05)
    rows = {r.case_id: r for r in compare_runs(tmp_path / "a", tmp_path / "b")}
    assert set(rows) == {"loop/whole/training/bs0/cpu", "loop/epoch/training/bs0/cpu"}
    assert rows["loop/epoch/training/bs0/cpu"].ratio_b_over_a == pytest.approx(1.0, rel=0.1)
    merged = merge_runs([tmp_path / "a", tmp_path / "c"], tmp_path / "merged", warn=print)
    cases = {r["case_id"] for r in csv.DictReader(open(merged / "cases.csv"))}
    assert "other/epoch/training/bs0/cpu" in cases and "loop/epoch/training/bs0/cpu" in cases
