"""Each example in examples/ runs and prints what its docstring promises."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness"]


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**_env(), **env}
    )


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def test_phases_example_under_measure_sums_to_the_total(fake_powercap):
    tree = fake_powercap()
    result = _run(
        [
            *CLI,
            "measure",
            "--json",
            "--probe",
            "rapl",
            "--powercap-root",
            str(tree.root),
            "--",
            sys.executable,
            "examples/phases.py",
        ]
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = [p["name"] for p in report["phases"]]
    assert names[:2] == ["epoch-1", "eval"] and names[-1] == "(outside phases)"
    assert len(names) == 7
    top = sum(p["energy_j"] for p in report["phases"] if p["depth"] == 0)
    assert top == pytest.approx(report["total_energy_j"], rel=1e-9)
    outside = report["phases"][-1]
    assert outside["energy_j"] > 0  # the interpreter's start-up and imports
    assert report["co2_g"] == pytest.approx(report["total_energy_j"] / 3.6e6 * 475, rel=0.01)
    assert report["carbon"]["assumed"] is True


@pytest.mark.parametrize("example", ["track_loop.py", "hf_trainer.py", "lightning_trainer.py"])
def test_trainer_examples_write_a_run_directory(example, tmp_path, fake_powercap):
    tree = fake_powercap()
    out = tmp_path / "run"
    result = _run(
        [sys.executable, f"examples/{example}", str(out)],
        ENERGY_HARNESS_POWERCAP_ROOT=str(tree.root),
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if " J, " in line]
    assert len(lines) == 3  # one per epoch (the trainers: read back from their own logs)
    assert "predicted for 3 epochs (after 1)" in result.stderr
    assert "world average 475 g/kWh, assumed" in result.stderr
    cases = {r["variant"] for r in csv.DictReader(open(out / "cases.csv"))}
    assert {"whole", "epoch", "eval"} <= cases
