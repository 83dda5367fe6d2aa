"""Repetitions read from a run's measurements.csv a line at a time, only the columns needed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.errors import EnergyHarnessError
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, iter_rows, read_rows
from harness.rows.repetitions import (
    REPETITION_COLUMNS,
    case_repetitions,
    load_run_repetitions,
)

NOTE = "counter read from /sys/class/powercap; " * 20  # a long cell no reader needs


def window(case_id: str, rep: int, node_rank: tuple[int, int], energy_j: tuple[float, float]):
    """The rows of one rank in one window: package and dram in the total, core not."""
    node, rank = node_rank
    base = {
        "run_id": "r1",
        "case_id": case_id,
        "model": "lenet5",
        "variant": "dense",
        "precision": "fp32",
        "repetition": rep,
        "node": node,
        "rank": rank,
        "source": "counter",
        "samples": 50,
        "valid": True,
        "round": rep,
        "process": rep % 2,
        "iterations": 10 + rep,
        "duration_s": 1.0 + rank,
        "idle_power_w": 2.0,
        "dynamic_energy_j": 1.0,
        "other_cpu_pct": 5.0 + rank,
        "note": NOTE,
        "start_utc": "2026-01-01T10:00:00+00:00",
    }
    package, dram = energy_j
    return [
        {**base, "probe": "rapl", "domain": "cpu:package-0", "in_total": True, "energy_j": package},
        {**base, "probe": "rapl", "domain": "cpu:dram-0", "in_total": True, "energy_j": dram},
        {**base, "probe": "rapl", "domain": "cpu:core-0", "in_total": False, "energy_j": 999.0},
    ]


def write_run(run_dir: Path, rows: list[dict]) -> Path:
    run_dir.mkdir()
    measurements = CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS)
    measurements.append_many(rows)
    measurements.close()
    cases = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    cases.append_many([{"case_id": "a", "status": "ok"}, {"case_id": "gone", "status": "ok"}])
    cases.close()
    return run_dir


def two_cases() -> list[dict]:
    """Case a: two ranks x two windows; case b: one rank x one window."""
    return [
        *window("a", 0, (0, 0), (30.0, 20.0)),
        *window("a", 0, (0, 1), (10.0, 5.0)),
        *window("a", 1, (0, 0), (60.0, 15.0)),
        *window("a", 1, (0, 1), (20.0, 5.0)),
        *window("b", 0, (0, 0), (7.0, 3.0)),
    ]


def test_the_reader_keeps_only_the_columns_it_is_asked_for(tmp_path):
    run = write_run(tmp_path / "run", two_cases())
    rows = list(iter_rows(run / "measurements.csv", REPETITION_COLUMNS))
    assert len(rows) == 15
    assert all(set(r) == set(REPETITION_COLUMNS) for r in rows)
    assert "note" not in REPETITION_COLUMNS and "start_utc" not in REPETITION_COLUMNS
    assert [r["energy_j"] for r in rows[:3]] == ["30.0", "20.0", "999.0"]
    assert list(iter_rows(run / "measurements.csv", ["case_id", "absent"]))[-1] == {"case_id": "b"}
    assert set(read_rows(run / "measurements.csv")[0]) == set(MEASUREMENT_COLUMNS)


def test_a_negative_energy_is_refused_even_in_a_column_not_read(tmp_path):
    rows = two_cases()
    rows[4]["energy_j_per_sample"] = -0.5  # line 6: the header, then rows[0..4]
    run = write_run(tmp_path / "run", rows)
    with pytest.raises(EnergyHarnessError, match=r"measurements.csv: line 6: energy_j_per_sample"):
        list(iter_rows(run / "measurements.csv", ["case_id"]))


def test_repetitions_are_summed_per_window_over_ranks_and_domains(tmp_path):
    run = write_run(tmp_path / "run", two_cases())
    reps, case_ids = load_run_repetitions(run)
    assert case_ids == {"a", "b", "gone"}
    a = reps["a"]
    # samples once per rank: 2 x 50; window 0 is (30 + 20 + 10 + 5) J, window 1 (60 + 15 + 20 + 5) J
    assert a.energy_j_per_sample == [65.0 / 100, 100.0 / 100]
    assert a.domain_energy_j_per_sample[1] == {
        ("rapl", "cpu:package-0", "counter"): pytest.approx(80.0 / 100),
        ("rapl", "cpu:dram-0", "counter"): pytest.approx(20.0 / 100),
    }
    total = a.totals[1]
    assert (total.energy_j, total.samples, total.iterations) == (100.0, 100, 11)
    assert (total.duration_s, total.idle_power_w, total.other_cpu_pct) == (2.0, 8.0, 6.0)
    assert total.dynamic_energy_j == 4.0  # in-total rows only: 2 domains x 2 ranks
    assert (a.repetitions, a.rounds, a.processes) == (["0", "1"], ["0", "1"], ["0", "1"])
    assert a.names == {
        "run_id": "r1",
        "case_id": "a",
        "model": "lenet5",
        "variant": "dense",
        "mode": "",
        "batch_size": "",
        "device": "",
        "precision": "fp32",
    }
    assert (a.sources, a.recorded_sources, a.run_ids) == ({"counter"}, {"counter"}, {"r1"})
    assert reps["b"].energy_j_per_sample == [10.0 / 50]


def test_rows_in_any_order_give_the_same_repetitions(tmp_path):
    rows = two_cases()
    rows[-1] |= {"disturbed": True, "disturbed_reason": "busy: 80 % of the CPUs"}
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    first = write_run(tmp_path / "in-order", rows)
    in_order = load_run_repetitions(first)[0]
    mixed = load_run_repetitions(write_run(tmp_path / "mixed", shuffled))[0]
    for case_id in ("a", "b"):
        assert mixed[case_id].energy_j_per_sample == in_order[case_id].energy_j_per_sample
        assert mixed[case_id].totals == in_order[case_id].totals
    assert mixed["b"].all_disturbed and mixed["b"].disturbed == {"0": "busy: 80 % of the CPUs"}
    held = case_repetitions(read_rows(first / "measurements.csv"))  # every column, in memory
    assert held["a"].totals == in_order["a"].totals


def test_a_run_written_to_after_it_was_read_is_read_afresh(tmp_path):
    run = write_run(tmp_path / "run", two_cases())
    assert load_run_repetitions(run)[0]["b"].repetitions == ["0"]
    assert load_run_repetitions(run)[0]["b"].repetitions == ["0"]  # unchanged: not read again
    appender = CsvAppender(run / "measurements.csv", MEASUREMENT_COLUMNS)
    appender.append_many(window("b", 1, (0, 0), (8.0, 2.0)))
    appender.close()
    again = load_run_repetitions(run)[0]["b"]
    assert again.repetitions == ["0", "1"] and again.energy_j_per_sample == [0.2, 0.2]


def test_a_line_the_csv_module_cannot_parse_is_named_not_a_traceback(tmp_path):
    run = write_run(tmp_path / "run", two_cases())
    with (run / "measurements.csv").open("a", newline="") as handle:
        handle.write("r1,a,lenet5\rstray,after a carriage return\n")  # line 17
    with pytest.raises(EnergyHarnessError, match=r"measurements.csv: line 17: new-line"):
        load_run_repetitions(run)
