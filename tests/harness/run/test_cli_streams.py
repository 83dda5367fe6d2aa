"""The terminal a run writes to: a reader that goes away (`run | head -1`), a stream in
ASCII, a width of 0. Real pipes and real encodings of a child process."""

# ruff: noqa: F811 - the runner's fixtures are imported, and tests take them as arguments

from __future__ import annotations

import subprocess
import sys

from conftest import FakeZone
from test_runner import SMALL, options, powercap  # noqa: F401 - the runner's fixtures
from test_runner_faults import cli_env, run_cli, start_cli

from harness.rows.csvfile import read_rows

TWO_GROUPS = SMALL.replace(
    '"dense", { name = "magnitude", sparsity = 0.9 }, "semi-structured-2:4", "int8-dynamic"]',
    '"dense"]',
).replace("batch_sizes = [32]", "batch_sizes = [32, 64]")


def test_a_closed_pipe_stops_after_the_cases_in_progress_and_keeps_their_rows(
    powercap, options, tmp_path
):
    (tmp_path / "s.toml").write_text(TWO_GROUPS)
    out = tmp_path / "run"
    child = start_cli(powercap, options, str(tmp_path / "s.toml"), "--out", str(out))
    first = child.stdout.readline()  # `| head -1`: one line, then the reader is gone
    child.stdout.close()
    code = child.wait(timeout=600)
    stderr = child.stderr.read()
    assert first.strip() and code == 141, stderr
    assert stderr.strip().splitlines()[-1] == (
        "standard output was closed: the run stopped after the cases in progress; every "
        f"finished row is kept: continue with `energy-harness run --resume {out}`"
    )
    cases = read_rows(out / "cases.csv")
    measured = {r["case_id"] for r in read_rows(out / "measurements.csv")}
    assert len(cases) == 1 and {r["case_id"] for r in cases} == measured  # the first group
    resumed = run_cli(powercap, options, "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert len(read_rows(out / "cases.csv")) == 2


def _cli(options, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        timeout=600,
        env={**cli_env(options), **env},
    )


def test_an_ascii_terminal_and_a_zero_width_get_ascii_at_80_columns(
    fake_powercap, options, tmp_path
):
    dense = SMALL.replace(
        ', { name = "magnitude", sparsity = 0.9 }, "semi-structured-2:4", "int8-dynamic"]', "]"
    )
    (tmp_path / "s.toml").write_text(dense)
    out = tmp_path / "run"
    c_locale = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0", "COLUMNS": "0"}
    quiet = fake_powercap([FakeZone("intel-rapl:0", "package-0", 0.05)])  # µJ per sample
    flags = ["--probe", "rapl", "--powercap-root", str(quiet.root)]
    run = _cli(options, c_locale, "run", str(tmp_path / "s.toml"), "--out", str(out), *flags)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    printed = run.stdout.decode("ascii")  # raises if anything is not ASCII
    assert " uJ" in printed and "µ" not in printed
    assert (out / "report.html").is_file() and "µJ" in (out / "report.html").read_text("utf-8")
    assert max(len(line) for line in printed.splitlines()) <= 80
    compare = _cli(options, {"PYTHONIOENCODING": "ascii"}, "compare", str(out), str(out))
    assert compare.returncode == 0, compare.stderr.decode(errors="replace")
    assert "uJ" in compare.stdout.decode("ascii")
    broken = _cli(options, {"COLUMNS": "0"}, "run", str(tmp_path / "missing.toml"))
    assert broken.returncode == 2
    assert broken.stderr.decode().startswith(f"error: cannot read suite file {tmp_path}")
