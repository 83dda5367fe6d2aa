"""Two runs started into one `--out` at once: one writes it whole, the other is refused
and changes nothing. The first run's first mkdir is slowed for real (strace injects a
delay as it returns), so the second starts between its check and its writes."""

# ruff: noqa: F811 - the runner's fixtures are imported, and tests take them as arguments

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from test_runner import SMALL, options, powercap  # noqa: F401 - the runner's fixtures
from test_runner_faults import cli_command, cli_env, wait_for

from harness.rows.csvfile import read_rows

ONE_VARIANT = SMALL.replace(
    '["dense", { name = "magnitude", sparsity = 0.9 }, "semi-structured-2:4", "int8-dynamic"]',
    '[{ name = "magnitude", sparsity = SPARSITY }]',
)


def _strace_or_skip() -> str:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    probe = subprocess.run([strace, "-o", "/dev/null", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()}")
    return strace


def test_a_slowed_run_and_a_second_run_into_one_out(powercap, options, tmp_path):
    strace = _strace_or_skip()
    texts = {s: ONE_VARIANT.replace("SPARSITY", s) for s in ("0.5", "0.7")}
    for sparsity, text in texts.items():
        (tmp_path / f"{sparsity}.toml").write_text(text)
    out = tmp_path / "run"
    slowed = [strace, "-o", "/dev/null", "-e", "inject=mkdir:delay_exit=9000000:when=1"]
    first = subprocess.Popen(
        slowed + cli_command(powercap, str(tmp_path / "0.5.toml"), "--out", str(out)),
        **_pipes(options),
    )
    wait_for(out.exists)  # the first run's mkdir is done; it returns 9 s later
    second = subprocess.Popen(
        cli_command(powercap, str(tmp_path / "0.7.toml"), "--out", str(out)), **_pipes(options)
    )
    runs = {"0.5": first, "0.7": second}
    ended = {s: (run.wait(timeout=600), run.stderr.read()) for s, run in runs.items()}
    winners = [s for s, (code, _) in ended.items() if code == 0]
    assert len(winners) == 1, ended
    (winner,) = winners
    (loser,) = set(ended) - {winner}
    code, stderr = ended[loser]
    assert code == 2, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert "is in use by process" in line or "already holds files" in line
    assert (out / "suite.toml").read_text() == texts[winner]
    assert json.loads((out / "run.json").read_text())["suite"].endswith(f"{winner}.toml")
    variants = {r["variant"] for r in read_rows(out / "cases.csv")}
    assert variants == {f"magnitude[sparsity={winner}]"}
    assert {r["variant"] for r in read_rows(out / "measurements.csv")} == variants


def _pipes(options) -> dict:
    return {
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.PIPE,
        "text": True,
        "env": cli_env(options),
    }
