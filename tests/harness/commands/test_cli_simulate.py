"""`energy-harness simulate`: one JSON object, the structured variant, bad input as one
line (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.simulate.accelerators import builtin_accelerators

pytest.importorskip("scalesim")
runner = CliRunner()


def _small(tmp_path: Path) -> Path:
    text = builtin_accelerators()["edge-systolic-64"].read_text(encoding="utf-8")
    path = tmp_path / "small.toml"
    path.write_text(text.replace("rows = 64", "rows = 32").replace("cols = 64", "cols = 32"))
    return path


def _simulate(tmp_path: Path, *args: str) -> dict:
    acc, cache = str(_small(tmp_path)), str(tmp_path / "cache")
    result = runner.invoke(
        app, ["simulate", "lenet5", "--accelerator", acc, "--cache-dir", cache, "--json", *args]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # exactly one JSON object, nothing else


def test_simulate_json_is_one_labelled_object_and_structured_is_smaller(tmp_path):
    dense = _simulate(tmp_path)
    assert dense["label"].startswith("SIMULATED") and dense["array"] == [32, 32]
    assert [x["name"] for x in dense["layers"]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert sum(x["macs"] for x in dense["layers"]) == 416_520
    assert dense["energy_j_per_sample"] == pytest.approx(sum(dense["energy_parts_j"].values()))
    assert all(x["dram_words"] >= x["compulsory_dram_words"] for x in dense["layers"])
    assert set(dense["accelerator_sources"]) >= {"array", "energy.mac", "energy.dram"}
    structured = _simulate(tmp_path, "--variant", "structured")
    assert sum(x["macs"] for x in structured["layers"]) < 416_520 / 2
    assert structured["cycles"] < dense["cycles"]
    assert structured["energy_j_per_sample"] < dense["energy_j_per_sample"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accelerator", "tpu-v9"], "error: unknown accelerator 'tpu-v9'; built-in"),
        (["--timeout-s", "0"], "error: --timeout-s must be positive, got 0.0"),
    ],
)
def test_bad_simulate_input_is_one_line(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "harness", "simulate", "lenet5", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(message) and "Traceback" not in result.stderr
