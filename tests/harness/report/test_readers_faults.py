"""Readers (`report`, `compare`, `merge`) given what a lab's disks hold: a negative energy,
a shard that lost its measurements.csv, a run still being written by another process.
Each runs as the user runs it (a subprocess)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

from report_runs import make_run


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300
    )


def set_cell(path: Path, line: int, column: str, value: str) -> None:
    """Rewrite one cell of a CSV (`line` is 1-based, the header is line 1)."""
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    rows[line - 1][rows[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_text(out.getvalue(), newline="")


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_a_negative_energy_is_refused_with_its_file_and_line(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    set_cell(b / "measurements.csv", 3, "energy_j", "-0.0893")
    assert one_line(cli("compare", str(a), str(b))) == (
        f"error: {b}/measurements.csv: line 3: energy_j is -0.0893, below zero; an energy "
        "never is (a damaged or hand-edited line): restore the file, or delete that line "
        "(its case is then measured again on --resume)"
    )
    set_cell(a / "cases.csv", 2, "energy_j_per_sample_mean", "-5.0")
    line = one_line(cli("report", str(a)))
    assert line.startswith(f"error: {a}/cases.csv: line 2: energy_j_per_sample_mean is -5.0, ")
    assert not (a / "report.html").exists()


def test_merging_a_shard_without_its_measurements_is_refused(tmp_path):
    whole = make_run(tmp_path / "whole")
    shard = tmp_path / "shard"
    shard.mkdir()
    shutil.copy(whole / "cases.csv", shard / "cases.csv")
    line = one_line(cli("merge", str(shard), "-o", str(tmp_path / "merged")))
    assert line == (
        f"error: {shard} has no measurements.csv for 7 finished case(s) of its cases.csv "
        "(first: c1): restore that file from the shard, or merge without this shard"
    )
    assert not (tmp_path / "merged").exists()


HOLD_LOCK = """
import sys, time
from harness.rows.rundir import locked_run_dir
with locked_run_dir(sys.argv[1], "run"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_run_still_being_written_is_said_on_the_page_and_in_the_output(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(b)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline() == "locked\n"
        report, compare = cli("report", str(b)), cli("compare", str(a), str(b))
    finally:
        writer.kill()
        writer.wait()
    said = f"warning: {b} is still being written by process {writer.pid} on "
    assert report.returncode == 0 and report.stderr.startswith(said), report.stderr
    assert compare.returncode == 0 and compare.stderr.startswith(said), compare.stderr
    assert "the case being measured may show only some of its repetitions" in compare.stderr
    page = (b / "report.html").read_text()
    assert f"is still being written by process {writer.pid} on " in page
    assert "is still being written by" not in cli("compare", str(a), str(b)).stderr
