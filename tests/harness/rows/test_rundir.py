"""Run directories: one writer at a time (a lock that names its holder)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from faults import read_only

from harness.errors import EnergyHarnessError, OutputError
from harness.rows.rundir import create_run_dir, locked_run_dir


def test_a_second_writer_is_told_who_holds_the_run(tmp_path):
    with locked_run_dir(tmp_path, "run"):
        with pytest.raises(EnergyHarnessError) as taken:
            with locked_run_dir(tmp_path, "run --resume"):
                pass
        assert f"{tmp_path} is in use by process {os.getpid()} on " in str(taken.value)
        assert "(run, since " in str(taken.value)
        with pytest.raises(EnergyHarnessError, match="in use by process"):
            with locked_run_dir(tmp_path, "merge", shared=True):  # nor read half-written
                pass
    with locked_run_dir(tmp_path, "run --resume"):  # released at the end
        pass


def test_the_lock_is_released_when_its_process_is_killed(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from harness.rows.rundir import locked_run_dir\n"
            "with locked_run_dir(sys.argv[1], 'run'):\n"
            "    print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(EnergyHarnessError, match=f"in use by process {holder.pid} "):
        with locked_run_dir(tmp_path, "run --resume"):
            pass
    holder.kill()
    holder.wait()
    with locked_run_dir(tmp_path, "run --resume"):  # SIGKILL leaves no stale lock
        pass


def test_readers_share_the_lock_and_read_only_runs_need_none(tmp_path):
    with locked_run_dir(tmp_path, "merge", shared=True):
        with locked_run_dir(tmp_path, "merge", shared=True):
            pass
    run = tmp_path / "ro"
    run.mkdir()
    with read_only(run):
        with locked_run_dir(run, "merge", shared=True):
            pass
        with pytest.raises(OutputError, match=f"cannot write {run / 'run.lock'}: "):
            with locked_run_dir(run, "run --resume"):
                pass


def test_a_run_directory_in_a_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    with read_only(folder):
        with pytest.raises(OutputError, match=f"cannot create {folder / 'run'}: "):
            create_run_dir(folder / "run")
        with pytest.raises(OutputError, match=f"cannot create {folder}/"):
            create_run_dir(None, folder)
