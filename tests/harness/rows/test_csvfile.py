"""CSV files of a run under faults: a row cut off mid-write, a full disk, a damaged line."""

from __future__ import annotations

import os

import pytest
from faults import grow_disk, read_only, small_disk

from harness.errors import EnergyHarnessError, OutputError
from harness.rows.csvfile import CsvAppender, read_rows, write_atomic

COLUMNS = ["case_id", "energy_j", "note"]
HEADER = "case_id,energy_j,note\r\n"


def test_a_row_cut_off_mid_write_is_set_aside_and_the_next_row_is_whole(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text(HEADER + "a,1.5,\r\nb,2.5,\r\nc,3.", newline="")
    appender = CsvAppender(path, COLUMNS)
    assert appender.set_aside is not None and "line 4 was cut off" in appender.set_aside
    appender.append({"case_id": "c", "energy_j": 3.25})
    appender.close()
    assert [(r["case_id"], r["energy_j"]) for r in read_rows(path)] == [
        ("a", "1.5"),
        ("b", "2.5"),
        ("c", "3.25"),
    ]
    assert (tmp_path / "cases.csv.torn").read_text() == "c,3.\n"  # kept, not lost


def test_a_cut_inside_a_quoted_multi_line_cell_is_a_partial_row(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text(HEADER + 'a,1.0,"first line\nsecond"\r\nb,2.0,"first line\n', newline="")
    CsvAppender(path, COLUMNS).close()
    assert [r["note"] for r in read_rows(path)] == ["first line\nsecond"]
    assert (tmp_path / "cases.csv.torn").read_text() == 'b,2.0,"first line\n'


def test_a_reader_names_the_line_of_a_partial_or_damaged_row(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text(HEADER + "a,1.0,\r\nb,2.", newline="")
    with pytest.raises(EnergyHarnessError, match=r"cases.csv: line 3 was cut off.*--resume"):
        read_rows(path)
    path.write_text(HEADER + "a,1.0,,extra\r\nb,2.0,\r\n", newline="")
    with pytest.raises(EnergyHarnessError, match=r"cases.csv: line 2 has 4 fields, the header 3"):
        read_rows(path)
    path.write_text(HEADER + "a,1.0,\r\nthis is not a row\r\n", newline="")
    with pytest.raises(EnergyHarnessError, match="line 3 has 1 fields"):
        read_rows(path)
    with pytest.raises(EnergyHarnessError, match="line 3 has 1 fields"):
        CsvAppender(path, COLUMNS)  # nothing is appended to a damaged file


def test_a_full_disk_is_one_line_and_nothing_is_glued_after_it(tmp_path):
    with small_disk(tmp_path / "disk", 16) as disk:
        path = disk / "measurements.csv"
        appender = CsvAppender(path, COLUMNS)
        row = {"case_id": "lenet5/dense", "energy_j": 1.25, "note": "x" * 300}
        written = 0
        with pytest.raises(OutputError) as failure:
            for _ in range(1000):
                appender.append(row)
                written += 1
        assert str(failure.value) == (
            f"cannot write {path}: No space left on device; free some space"
        )
        with pytest.raises(OutputError):  # refused: the file may end with a partial row
            appender.append(row)
        appender.close()
        grow_disk(disk, 1024)
        again = CsvAppender(path, COLUMNS)
        # the failed write left part of a row: it is set aside, not glued to the next one
        assert again.set_aside and f"line {written + 2} was cut off" in again.set_aside
        again.append({"case_id": "after", "energy_j": 2.0})
        again.close()
        rows = read_rows(path)
        assert len(rows) == written + 1 and rows[-1]["case_id"] == "after"
        assert all(r["energy_j"] == "1.25" and len(r["note"]) == 300 for r in rows[:-1])


def test_dev_full_gives_enospc_as_one_line(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    path = tmp_path / "cases.csv"
    path.symlink_to("/dev/full")
    with pytest.raises(OutputError, match="No space left on device; free some space"):
        CsvAppender(path, COLUMNS)


def test_a_read_only_folder_is_one_line_and_leaves_no_temporary_file(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "cases.csv").write_text(HEADER)
    with read_only(folder):
        with pytest.raises(OutputError, match=r"cannot write .*cases.csv: Read-only|Permission"):
            CsvAppender(folder / "cases.csv", COLUMNS)
        with pytest.raises(OutputError, match=r"cannot write .*report.html"):
            write_atomic(folder / "report.html", "<html></html>")
    assert sorted(p.name for p in folder.iterdir()) == ["cases.csv"]


def test_write_atomic_removes_its_temporary_file_when_the_disk_fills(tmp_path):
    with small_disk(tmp_path / "disk", 16) as disk:
        with pytest.raises(OutputError, match="No space left on device"):
            write_atomic(disk / "report.html", "x" * 200_000)
        assert list(disk.iterdir()) == []


def test_a_file_is_rewritten_from_its_own_rows_in_batches(tmp_path, monkeypatch):
    import harness.rows.csvfile as csvfile

    path = tmp_path / "measurements.csv"
    appender = CsvAppender(path, COLUMNS)
    appender.append_many([{"case_id": f"c{i}", "energy_j": i, "note": ""} for i in range(25)])
    appender.close()
    monkeypatch.setattr(csvfile, "REWRITE_BATCH_ROWS", 4)  # 7 batches, the last one short
    pulled: list[int] = []

    def kept():
        for row in csvfile.iter_rows(path):
            pulled.append(int(row["energy_j"]))
            if len(pulled) == 8:  # rows 1, 2, 4, 5 kept: the first batch is on disk already
                written = (tmp_path / ".measurements.csv.tmp").read_text().splitlines()
                assert len(written) == 1 + 4
            if int(row["energy_j"]) % 3:
                yield row | {"note": "kept"}

    csvfile.rewrite_csv(path, COLUMNS, kept())
    assert pulled == list(range(25))  # read whole from the file being replaced
    rows = read_rows(path)
    assert [int(r["energy_j"]) for r in rows] == [i for i in range(25) if i % 3]
    assert {r["note"] for r in rows} == {"kept"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measurements.csv"]
