"""A lab's faults around a run: a model cache on a disk that fills up, a suite's model
options, problems a suite shows only once read."""

# ruff: noqa: F811 - the runner's fixtures are imported, and tests take them as arguments

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from faults import small_disk
from test_runner import SMALL, options, powercap  # noqa: F401 - the runner's fixtures
from test_runner_faults import cli_command

from harness.rows.csvfile import read_rows

HERE = Path(__file__).parent
TWO_CASES = SMALL.replace(', "semi-structured-2:4", "int8-dynamic"]', "]").replace(
    "train_epochs = 2", "train_epochs = 1"
)


def _run(powercap, suite: Path, out: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENERGY_HARNESS_CACHE": str(cache), "PYTHONPATH": str(HERE)}
    return subprocess.run(
        cli_command(powercap, str(suite), "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_a_full_cache_disk_is_said_once_and_every_case_is_measured(powercap, tmp_path):
    (tmp_path / "s.toml").write_text(TWO_CASES)
    with small_disk(tmp_path / "disk", 64) as disk:
        result = _run(powercap, tmp_path / "s.toml", tmp_path / "run", disk / "cache")
        left = sorted(p.name for p in (disk / "cache").iterdir())
    printed = " ".join((result.stdout + result.stderr).split())  # lines wrap at 80 columns
    assert result.returncode == 0, printed
    assert printed.count("warning: cannot write the model cache") == 1, printed
    assert "No space left on device" in printed or "unexpected pos" in printed
    assert "prepared models are no longer saved in this run" in printed
    assert "Traceback" not in printed
    statuses = [r["status"] for r in read_rows(tmp_path / "run" / "cases.csv")]
    assert statuses == ["ok"] * 3, printed  # dense, magnitude and the A/A control
    assert not [name for name in left if name.endswith(".tmp")], left


def test_a_suites_model_options_reach_the_factory_and_cases_csv(powercap, tmp_path):
    text = TWO_CASES.replace(
        'name = "lenet5"\nvariants = ["dense", { name = "magnitude", sparsity = 0.9 }]',
        'name = "user_models:wide"\nvariants = ["dense"]\noptions = { width = 4096 }\n'
        '[[models]]\nname = "user_models:wide"\nmodes = ["training"]\nvariants = ["dense"]',
    )
    (tmp_path / "s.toml").write_text(text)
    result = _run(powercap, tmp_path / "s.toml", tmp_path / "run", tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {r["mode"]: r for r in read_rows(tmp_path / "run" / "cases.csv")}
    wide, default = rows["inference"], rows["training"]
    assert wide["status"] == default["status"] == "ok"
    assert wide["model_options"] == "width=4096" and default["model_options"] == ""
    pixels = 32 * 32  # the digits dataset's samples
    assert int(wide["params"]) == pixels * 4096 + 4096 + 4096 * 10 + 10
    assert int(default["params"]) == pixels * 32 + 32 + 32 * 10 + 10
