"""merge: shards of one suite, written atomically; refusals and warnings in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faults import read_only, small_disk

from harness.errors import EnergyHarnessError
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows
from harness.rows.merge import merge_runs
from harness.rows.rundir import locked_run_dir
from harness.spec.suite import parse_suite

SUITE = """
[suite]
batch_sizes = [32]

[[models]]
name = "lenet5"
variants = ["dense", { name = "magnitude", sparsity = 0.9 }, "int8-dynamic", "threshold"]
"""
CASE_IDS = [c.case_id for c in parse_suite(SUITE, "s.toml").cases]  # four and a control


def make_shard(run_dir: Path, index: int, count: int, suite: str = SUITE) -> Path:
    """A finished shard: the cases whose index is `index` modulo `count`, one row each."""
    run_dir.mkdir(parents=True)
    (run_dir / "suite.toml").write_text(suite)
    options = {"shard": [index, count]}
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "options": options}))
    (run_dir / "environment.json").write_text(json.dumps({"hostname": run_dir.name}))
    cases = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    measurements = CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS)
    for case_id in CASE_IDS[index::count]:
        cases.append({"run_id": run_dir.name, "case_id": case_id, "status": "ok"})
        measurements.append({"run_id": run_dir.name, "case_id": case_id, "energy_j": 1.5})
    cases.close()
    measurements.close()
    return run_dir


def test_shards_merge_into_every_case_once(tmp_path):
    shards = [make_shard(tmp_path / f"s{i}", i, 2) for i in range(2)]
    warnings: list[str] = []
    merged = merge_runs(shards, tmp_path / "merged", warn=warnings.append)
    assert sorted(r["case_id"] for r in read_rows(merged / "cases.csv")) == sorted(CASE_IDS)
    assert len(read_rows(merged / "measurements.csv")) == len(CASE_IDS) == 5
    assert json.loads((merged / "run.json").read_text())["run_id"] == "merged"
    assert warnings == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged", "s0", "s1"]


def test_an_incomplete_shard_set_is_merged_with_a_warning(tmp_path):
    shards = [make_shard(tmp_path / f"s{i}", i, 4) for i in (0, 2)]
    warnings: list[str] = []
    merge_runs(shards, tmp_path / "merged", warn=warnings.append)
    assert warnings == [
        "shard(s) 1/4, 3/4 of this suite are not among the runs merged: merge them too",
        f"the merged run holds 3 of the suite's 5 cases; missing: {CASE_IDS[1]}, "
        f"{CASE_IDS[3]} (a shard not given, or one that did not finish: resume it, then "
        "merge again)",
    ]


def test_a_suite_whose_model_cannot_be_imported_here_still_warns(tmp_path):
    suite = SUITE.replace('name = "lenet5"', 'name = "lab_models_not_here:net"')
    shards = [make_shard(tmp_path / f"s{i}", i, 2, suite) for i in (0,)]
    warnings: list[str] = []
    merged = merge_runs(shards, tmp_path / "merged", warn=warnings.append)
    assert warnings[0] == "shard(s) 1/2 of this suite are not among the runs merged: merge them too"
    assert warnings[1].startswith("cannot list the suite's cases to check that none is missing (")
    assert "lab_models_not_here" in warnings[1] and "PYTHONPATH" in warnings[1]
    assert (merged / "cases.csv").is_file()


def test_runs_of_different_suites_are_refused_and_nothing_is_left(tmp_path):
    a = make_shard(tmp_path / "a", 0, 2)
    b = make_shard(tmp_path / "b", 1, 2, SUITE.replace("[32]", "[64]"))
    with pytest.raises(EnergyHarnessError, match=f"{a} and {b} ran different suites"):
        merge_runs([a, b], tmp_path / "merged")
    twice = make_shard(tmp_path / "c", 0, 2)
    with pytest.raises(EnergyHarnessError, match="is in both"):  # fails half-way through
        merge_runs([a, twice], tmp_path / "merged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no half directory


def test_a_shard_still_being_written_or_a_taken_output_is_refused(tmp_path):
    shards = [make_shard(tmp_path / f"s{i}", i, 2) for i in range(2)]
    with locked_run_dir(shards[1], "run"):
        with pytest.raises(EnergyHarnessError, match=f"{shards[1]} is in use by process"):
            merge_runs(shards, tmp_path / "merged")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(EnergyHarnessError, match="-o .*taken already holds files"):
        merge_runs(shards, tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_a_damaged_shard_names_its_line(tmp_path):
    shards = [make_shard(tmp_path / f"s{i}", i, 2) for i in range(2)]
    with (shards[1] / "cases.csv").open("a") as handle:
        handle.write("run1,lenet5/dense/inference/bs32/cpu,lenet5,dense")  # cut off
    with pytest.raises(EnergyHarnessError, match=r"s1/cases.csv: line 4 was cut off"):
        merge_runs(shards, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_a_full_disk_leaves_no_half_merged_directory(tmp_path):
    shards = [make_shard(tmp_path / f"s{i}", i, 2) for i in range(2)]
    with small_disk(tmp_path / "disk", 12) as disk:  # three pages: the merged run needs more
        with pytest.raises(EnergyHarnessError) as full:
            merge_runs(shards, disk / "merged")
        assert str(full.value).startswith(f"cannot write {disk / 'merged'}/")
        assert "No space left on device; free some space" in str(full.value)
        assert list(disk.iterdir()) == []


def test_a_read_only_output_folder_is_one_line(tmp_path):
    shards = [make_shard(tmp_path / f"s{i}", i, 2) for i in range(2)]
    folder = tmp_path / "results"
    folder.mkdir()
    with read_only(folder):
        with pytest.raises(EnergyHarnessError, match=f"cannot write {folder / 'merged'}: "):
            merge_runs(shards, folder / "merged")
    assert list(folder.iterdir()) == []
