"""Rounds end to end on a fake powercap tree: shuffled order, processes, pairs, the A/A
control, a round cut off and resumed, windows disturbed by real CPU hogs."""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import time

import pytest
from conftest import FakePowercap, FakeZone, memory_dir
from test_runner import start_hogs

from harness.errors import EnergyHarnessError
from harness.rows.columns import MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows
from harness.run.options import RunOptions
from harness.run.rounds import round_order
from harness.run.runner import run_suite
from harness.spec.suite import parse_suite

SUITE = """
[suite]
repetitions = 4
processes = 2
warmup_iterations = 1
min_window_s = 0.15
idle_baseline_s = 0.2
timeline_hz = 0
train_epochs = 1
finetune_epochs = 1
batch_sizes = [32]
modes = ["inference"]
seed = 11
stable_max_other_cpu_pct = 100

[[models]]
name = "lenet5"
variants = ["dense", { name = "magnitude", sparsity = 0.9 }, "int8-dynamic"]
"""
DENSE = "lenet5/dense/inference/bs32/cpu"
CONTROL = "lenet5/dense (control)/inference/bs32/cpu"
MAGNITUDE = "lenet5/magnitude[sparsity=0.9]/inference/bs32/cpu"


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    zones = [FakeZone("intel-rapl:0", "package-0", 20.0)]
    tree = FakePowercap(memory_dir(tmp_path_factory.mktemp("powercap")), zones).start()
    cache = tmp_path_factory.mktemp("cache")
    yield RunOptions(probes=["rapl"], powercap_root=tree.root, cache_dir=cache)
    tree.stop()
    shutil.rmtree(tree.root, ignore_errors=True)


@pytest.fixture(scope="module")
def run(options, tmp_path_factory):
    return run_suite(parse_suite(SUITE, "r.toml"), options, out=tmp_path_factory.mktemp("r") / "r")


def windows(run_dir) -> dict[tuple[str, str], dict[str, str]]:
    """(case_id, repetition) -> its row (one domain: the package)."""
    return {(r["case_id"], r["repetition"]): r for r in read_rows(run_dir / "measurements.csv")}


def test_each_round_measures_every_case_once_in_its_own_shuffled_order(run):
    rows = windows(run)
    suite = parse_suite(SUITE, "r.toml")
    ids = [c.case_id for c in suite.cases]
    assert CONTROL in ids and ids.index(CONTROL) == ids.index(DENSE) + 1
    orders = []
    for round_no in range(4):
        in_round = sorted(
            (r for r in rows.values() if r["round"] == str(round_no)),
            key=lambda r: int(r["order_in_round"]),
        )
        order = tuple(r["case_id"] for r in in_round)
        assert order == round_order(ids, 11, suite.cases[0].group, round_no)
        assert {r["cases_in_round"] for r in in_round} == {"4"}
        orders.append(order)
    assert len(set(orders)) > 1  # shuffled per round, not one fixed order
    # rounds 0-1 in one fresh process, rounds 2-3 in another
    assert {r["process"] for r in rows.values() if r["round"] in ("0", "1")} == {"0"}
    assert {r["process"] for r in rows.values() if r["round"] in ("2", "3")} == {"1"}


def test_the_vs_dense_ratio_is_paired_round_by_round(run):
    rows = windows(run)
    cases = {r["case_id"]: r for r in read_rows(run / "cases.csv")}
    usable = {k: r for k, r in rows.items() if r["disturbed"] == "false"}
    per_sample = {k: float(r["energy_j"]) / float(r["samples"]) for k, r in usable.items()}
    both = [k for c, k in per_sample if c == MAGNITUDE and (DENSE, k) in per_sample]
    ratios = [per_sample[(MAGNITUDE, k)] / per_sample[(DENSE, k)] for k in both]
    geometric = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    magnitude = cases[MAGNITUDE]
    assert magnitude["energy_vs_dense_method"] == "paired"
    assert magnitude["energy_vs_dense_pairs"] == str(len(both)) and len(both) >= 4
    assert float(magnitude["energy_vs_dense_ratio"]) == pytest.approx(geometric)
    assert float(magnitude["energy_vs_dense_ratio_ci95_low"]) < geometric
    measured = sum(c == MAGNITUDE for c, _ in rows)
    assert magnitude["windows_measured"] == str(measured) and int(magnitude["processes"]) >= 2


def test_the_control_is_the_dense_model_measured_again_and_sets_the_floor(run):
    cases = {r["case_id"]: r for r in read_rows(run / "cases.csv")}
    control, dense = cases[CONTROL], cases[DENSE]
    assert control["status"] == "ok" and control["variant"] == "dense (control)"
    assert control["accuracy"] == dense["accuracy"]  # the same trained model
    assert control["accuracy_vs_dense_p_mcnemar"] == "1.0"  # no sample differs
    low = float(control["energy_vs_dense_ratio_ci95_low"])
    high = float(control["energy_vs_dense_ratio_ci95_high"])
    floor = max(abs(low - 1), abs(high - 1)) * 100
    assert float(cases[MAGNITUDE]["energy_vs_dense_noise_floor_pct"]) == pytest.approx(floor)
    assert control["energy_vs_dense_noise_floor_pct"] == ""
    # the accuracy of every case, with its interval over the 360 digits test images
    for row in cases.values():
        assert row["test_samples"] == "360"
        assert float(row["accuracy_ci95_low"]) < float(row["accuracy"])
        assert float(row["accuracy"]) < float(row["accuracy_ci95_high"])
    assert "of fine-tuning more" in cases[MAGNITUDE]["accuracy_reference"]


def test_a_round_cut_off_is_measured_again_and_whole_rounds_are_kept(run, options, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    rows = read_rows(cut / "measurements.csv")
    # as a kill in round 2 leaves it: rounds 0-1 whole, two windows of round 2, no case rows
    in_round_2 = [r for r in rows if r["round"] == "2"]
    in_round_2.sort(key=lambda r: int(r["order_in_round"]))
    kept = [r for r in rows if r["round"] in ("0", "1")] + in_round_2[:2]
    (cut / "measurements.csv").unlink()
    (cut / "cases.csv").unlink()
    appender = CsvAppender(cut / "measurements.csv", MEASUREMENT_COLUMNS)
    appender.append_many(kept)
    appender.close()
    run_suite(None, RunOptions(powercap_root=options.powercap_root), resume=cut)
    after = read_rows(cut / "measurements.csv")
    before = {(r["case_id"], r["round"]): r["start_utc"] for r in kept if r["round"] != "2"}
    now = {(r["case_id"], r["round"]): r["start_utc"] for r in after}
    assert all(now[k] == v for k, v in before.items())  # whole rounds kept as they were
    cut_windows = {(r["case_id"], r["round"]): r["start_utc"] for r in in_round_2[:2]}
    assert all(now[k] != v for k, v in cut_windows.items())  # round 2 measured again
    keys = [(r["case_id"], r["repetition"]) for r in after]
    assert len(keys) == len(set(keys))  # none twice
    assert sum(int(r["round"]) < 4 for r in after) == 16  # 4 cases x 4 rounds
    assert len(read_rows(cut / "cases.csv")) == 4


def test_windows_beside_cpu_hogs_are_marked_left_out_and_measured_again(options, tmp_path):
    text = (
        SUITE.replace("processes = 2", "processes = 1")
        .replace("= 100", "= 25")
        .replace(', { name = "magnitude", sparsity = 0.9 }, "int8-dynamic"', ', "int8-dynamic"')
    )
    suite = parse_suite(text, "h.toml")
    run_suite(suite, options, out=tmp_path / "warm")  # prepares and caches the models
    out = tmp_path / "busy"
    stop = threading.Event()

    def hog_during_round_one() -> None:
        """CPU hogs from the first window of round 1 for about one window."""
        while not stop.is_set():
            try:
                rows = read_rows(out / "measurements.csv")
            except EnergyHarnessError:  # a row being written
                rows = []
            if any(r["round"] == "1" for r in rows):
                break
            time.sleep(0.02)
        hogs = start_hogs(os.cpu_count() or 1)
        time.sleep(0.3)
        for pid in hogs:
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=hog_during_round_one)
    thread.start()
    try:
        run_suite(suite, options, out=out)
    finally:
        stop.set()
        thread.join()
    rows = read_rows(out / "measurements.csv")
    busy = [r for r in rows if r["disturbed_reason"].startswith("busy: other processes used")]
    assert busy and all(r["disturbed"] == "true" for r in busy)
    cases = {r["case_id"]: r for r in read_rows(out / "cases.csv")}
    for case_id, row in cases.items():
        usable = [r for r in rows if r["case_id"] == case_id and r["disturbed"] == "false"]
        assert len(usable) >= 4, case_id  # every disturbed window measured again
        disturbed = sum(r["case_id"] == case_id and r["disturbed"] == "true" for r in rows)
        assert row["windows_disturbed"] == str(disturbed)
        assert row["windows_measured"] == str(len(usable) + disturbed)
    assert any(int(r["round"]) >= 4 for r in rows)  # an extra round
