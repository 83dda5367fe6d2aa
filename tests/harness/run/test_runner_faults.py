"""The runner under faults: kills, a second process, a full disk, read-only folders,
damaged run files. Whatever happens, the rows already measured survive."""

# ruff: noqa: F811 - the runner's fixtures are imported, and tests take them as arguments

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from faults import grow_disk, read_only, small_disk
from test_runner import SMALL, options, powercap  # noqa: F401 - the runner's fixtures

from harness.errors import EnergyHarnessError, OutputError
from harness.report.page import write_report
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import read_rows, set_aside_torn_row
from harness.run.options import RunOptions
from harness.run.runner import run_suite
from harness.spec.suite import parse_suite

HERE = Path(__file__).parent


def cli_command(powercap, *args: str) -> list[str]:
    flags = ["--probe", "rapl", "--powercap-root", str(powercap.root)]
    if "--resume" in args:
        flags = ["--powercap-root", str(powercap.root)]
    return [sys.executable, "-m", "harness", "run", *args, *flags]


def cli_env(options) -> dict[str, str]:
    return {**os.environ, "ENERGY_HARNESS_CACHE": str(options.cache_dir)}


def run_cli(powercap, options, *args: str) -> subprocess.CompletedProcess:
    """`energy-harness run ARGS` on the fake powercap tree, to the end."""
    command = cli_command(powercap, *args)
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=cli_env(options)
    )


def start_cli(powercap, options, *args: str) -> subprocess.Popen:
    """`energy-harness run ARGS` on the fake powercap tree, started, its output piped; Ctrl-C
    reaches it even when the tests themselves run with SIGINT ignored (a background job)."""
    return subprocess.Popen(
        cli_command(powercap, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(options),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(predicate, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.1)


def case_rows(run_dir: Path) -> list[dict[str, str]]:
    return read_rows(run_dir / "cases.csv") if (run_dir / "cases.csv").exists() else []


def assert_whole(run_dir: Path, suite_text: str) -> None:
    """Every case once; every measurement row once, and only for cases that finished."""
    cases = read_rows(run_dir / "cases.csv")
    expected = sorted(c.case_id for c in parse_suite(suite_text, "s.toml").cases)
    assert sorted(r["case_id"] for r in cases) == expected
    rows = read_rows(run_dir / "measurements.csv")
    keys = [(r["case_id"], r["repetition"], r["domain"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r["case_id"] for r in rows} == {r["case_id"] for r in cases if r["status"] == "ok"}


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "run.lock"}


def test_a_second_process_is_refused_and_sigkill_keeps_the_timeline(powercap, options, tmp_path):
    text = SMALL.replace("repetitions = 2", "repetitions = 3")
    (tmp_path / "s.toml").write_text(text)
    out = tmp_path / "run"
    live = subprocess.Popen(
        cli_command(powercap, str(tmp_path / "s.toml"), "--out", str(out), "--no-report"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(options),
    )
    wait_for(lambda: len(case_rows(out)) >= 1)
    first_rows = read_rows(out / "measurements.csv")
    with pytest.raises(EnergyHarnessError) as taken:  # this test is the second process
        run_suite(None, RunOptions(), resume=out)
    assert str(taken.value).startswith(
        f"{out} is in use by process {live.pid} on {socket.gethostname()} (run, since "
    )
    rows = read_rows(out / "measurements.csv")
    assert rows[: len(first_rows)] == first_rows  # the live run's rows were left alone
    live.send_signal(signal.SIGKILL)
    live.wait(timeout=60)
    assert len(case_rows(out)) < 4  # killed in the middle of the run

    # the timeline was on disk before the kill, from before the first case began
    set_aside_torn_row(out / "power_timeline.csv")  # a kill may cut a line: resume does this
    killed = read_rows(out / "power_timeline.csv")
    started = datetime.fromisoformat(json.loads((out / "run.json").read_text())["started_utc"])
    first_case = datetime.fromisoformat(case_rows(out)[0]["started_utc"])
    assert killed and datetime.fromisoformat(killed[0]["time_utc"]) < first_case

    resumed = run_cli(powercap, options, "--resume", str(out), "--no-report")
    assert resumed.returncode == 0, resumed.stderr
    assert_whole(out, text)
    points = read_rows(out / "power_timeline.csv")
    assert len(points) > len(killed)
    for point in points:  # one clock for the whole run, across both sessions
        since_start = datetime.fromisoformat(point["time_utc"]) - started
        assert float(point["elapsed_s"]) == pytest.approx(since_start.total_seconds(), abs=0.01)
    second_session = [float(p["elapsed_s"]) for p in points[len(killed) :]]
    assert min(second_session) > max(float(p["elapsed_s"]) for p in killed)
    assert re.search(r"Power timeline</h2>\s*<figure><img", write_report(out).read_text())

    # resuming the finished run says so and changes nothing
    before = snapshot(out)
    again = run_cli(powercap, options, "--resume", str(out))
    assert again.returncode == 0, again.stderr
    assert f"{out} is finished: all 5 cases have a row in cases.csv; nothing to do" in again.stdout
    assert snapshot(out) == before


def test_a_full_disk_stops_the_run_in_one_line_and_resume_finishes_it(powercap, options, tmp_path):
    (tmp_path / "s.toml").write_text(SMALL)
    with small_disk(tmp_path / "disk", 20) as disk:  # five pages: the run needs more
        out = disk / "run"
        full = run_cli(
            powercap, options, str(tmp_path / "s.toml"), "--out", str(out), "--no-report"
        )
        assert full.returncode == 2, full.stdout + full.stderr
        assert "Traceback" not in full.stderr
        errors = [line for line in full.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(f"error: cannot write {out}/")
        assert errors[0].endswith(
            "No space left on device; free some space; every row written so far is kept: "
            f"then continue with `energy-harness run --resume {out}`"
        )
        assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
        grow_disk(disk, 4096)
        resumed = run_cli(powercap, options, "--resume", str(out), "--no-report")
        assert resumed.returncode == 0, resumed.stderr
        assert_whole(out, SMALL)


def make_run_dir(run_dir: Path, options_dict: dict | None = None) -> Path:
    """A run directory as `run` leaves it before its first case."""
    run_dir.mkdir()
    (run_dir / "suite.toml").write_text(SMALL)
    opts = options_dict if options_dict is not None else RunOptions().to_dict()
    meta = {"run_id": run_dir.name, "options": opts, "started_utc": "2026-01-01T00:00:00+00:00"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "cases.csv").write_text(",".join(CASE_COLUMNS) + "\r\n")
    (run_dir / "measurements.csv").write_text(",".join(MEASUREMENT_COLUMNS) + "\r\n")
    return run_dir


def _truncate(run_dir: Path) -> None:
    (run_dir / "run.json").write_text('{"run_id": "x", "opt')


def _empty(run_dir: Path) -> None:
    (run_dir / "run.json").write_text("{}")


def _unknown_option(run_dir: Path) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    meta["options"]["speed"] = 3
    (run_dir / "run.json").write_text(json.dumps(meta))


def _no_suite(run_dir: Path) -> None:
    (run_dir / "suite.toml").unlink()


def _extra_field(run_dir: Path) -> None:
    with (run_dir / "cases.csv").open("a") as handle:
        handle.write("x," * len(CASE_COLUMNS) + "extra\r\n")


def _garbage(run_dir: Path) -> None:
    with (run_dir / "measurements.csv").open("a") as handle:
        handle.write("this is not a row\r\n")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, "run.json is damaged (JSONDecodeError: "),
        (_empty, "run.json is damaged (ValueError: no `options` table)"),
        (_unknown_option, "run.json is damaged (TypeError: "),
        (_no_suite, "suite.toml (No such file or directory); copy the suite file"),
        (_extra_field, "cases.csv: line 2 has 45 fields"),
        (_garbage, "measurements.csv: line 2 has 1 fields"),
    ],
)
def test_damaged_run_files_on_resume_are_one_line(tmp_path, damage, message):
    run_dir = make_run_dir(tmp_path / "run")
    damage(run_dir)
    before = snapshot(run_dir)
    with pytest.raises(EnergyHarnessError) as failure:
        run_suite(None, RunOptions(), resume=run_dir)
    assert message.replace("45", str(len(CASE_COLUMNS) + 1)) in str(failure.value)
    assert str(run_dir) in str(failure.value)  # which run, and (in the message) what to do
    assert snapshot(run_dir) == before  # nothing changed, no *.tmp left behind


def test_a_damaged_run_json_is_one_line_on_the_command_line(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    _truncate(run_dir)
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {run_dir}/run.json is damaged (JSONDecodeError")
    assert f"`energy-harness run {run_dir}/suite.toml --out NEW_DIR`" in line


def test_resume_refuses_options_that_would_change_the_run(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    before = snapshot(run_dir)
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--resume", str(run_dir)]
        + ["--pue", "1.5", "--shard", "0/2", "--carbon-intensity", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: --resume continues a run as it was: --shard, --carbon-intensity, --pue would "
        "change it;"
    )
    assert snapshot(run_dir) == before


def test_read_only_output_is_one_line(options, tmp_path):
    suite = parse_suite(SMALL, "small.toml")
    folder = tmp_path / "results"
    folder.mkdir()
    run_dir = make_run_dir(tmp_path / "run", options.to_dict())
    with read_only(folder), read_only(run_dir):
        with pytest.raises(OutputError, match=f"cannot create {folder / 'new'}: "):
            run_suite(suite, options, out=folder / "new")
        with pytest.raises(OutputError, match=f"cannot write {run_dir / 'run.lock'}: "):
            run_suite(None, RunOptions(), resume=run_dir)
        result = subprocess.run(
            [sys.executable, "-m", "harness", "run", "--out", str(folder / "new")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: cannot create {folder / 'new'}: ")
    assert list(folder.iterdir()) == []


def test_a_read_only_cache_warns_once_and_names_stay_text(options, tmp_path, capsys):
    sys.path.insert(0, str(HERE))
    text = SMALL.replace(
        'name = "lenet5"\nvariants = ["dense", { name = "magnitude", sparsity = 0.9 }, '
        '"semi-structured-2:4", "int8-dynamic"]',
        'name = "lenet5"\nvariants = ["dense", { name = "magnitude", sparsity = 0.9 }]\n'
        '[[models]]\nname = "user_models:ok"\nvariants = ["dense"]',
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    ro_options = RunOptions(**{**options.__dict__, "cache_dir": cache})
    with read_only(cache):
        run_dir = run_suite(parse_suite(text, "s.toml"), ro_options, out=tmp_path / "run")
    printed = capsys.readouterr().out
    warning = f"warning: cannot write the model cache {cache} ("
    assert printed.count(warning) == 1
    assert "prepared models are read from it but not saved" in printed
    statuses = {r["case_id"]: r["status"] for r in read_rows(run_dir / "cases.csv")}
    assert statuses["lenet5/magnitude[sparsity=0.9]/inference/bs32/cpu"] == "ok"
    assert list(cache.iterdir()) == []
    assert "user_models:ok/dense/inference/bs32/cpu: failed" in printed  # `:ok:` stays text
    assert "\N{SQUARED OK}" not in printed


def test_an_early_interrupt_names_the_real_run_directory(powercap, options, tmp_path):
    (tmp_path / "s.toml").write_text(SMALL)
    out = tmp_path / "run"
    child = start_cli(powercap, options, str(tmp_path / "s.toml"), "--out", str(out))
    wait_for(lambda: (out / "run.json").exists(), 120)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    assert f"`energy-harness run --resume {out}`" in stdout
    assert stdout.strip().splitlines()[-1] == str(out)
