"""No BMC credential appears in any output, file or error: every command a user runs with
the bmc probe is run as a user would (a subprocess), and all it says and writes is grepped."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_bmc import RedfishServer

USER, PASSWORD = "lab-admin-7f3q", "s3cret-Pa55word-x9"
SECRETS = (USER, PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
TINY_SUITE = """
[suite]
name = "tiny"
dataset = "digits"
repetitions = 1
warmup_iterations = 1
min_window_s = 0.3
idle_baseline_s = 0.3
timeline_hz = 10.0
train_epochs = 1
finetune_epochs = 1
batch_sizes = [64]
modes = ["inference"]

[[models]]
name = "mlp"
variants = ["dense"]
"""


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def server():
    bmc = RedfishServer(USER, PASSWORD, period_s=0.1)
    yield bmc
    bmc.stop()


def test_no_credential_in_any_output_file_or_error(server, tmp_path):
    env = {
        "ENERGY_HARNESS_BMC_URL": server.url,
        "ENERGY_HARNESS_BMC_USER": USER,
        "ENERGY_HARNESS_BMC_PASSWORD": PASSWORD,
        "ENERGY_HARNESS_BMC_POLL_S": "0.05",
    }
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    run_dir = tmp_path / "run"
    sleep = [sys.executable, "-c", "import time; time.sleep(0.5)"]
    results = {
        "probes": cli("probes", env=env),
        "probes --json": cli("probes", "--json", env=env),
        "measure": cli("measure", "--probe", "bmc", "--", *sleep, env=env),
        "measure --json": cli("measure", "--json", "--probe", "bmc", "--", *sleep, env=env),
        "run": cli(
            "run", str(suite), "--probe", "bmc", "--out", str(run_dir), "--no-cache", env=env
        ),
    }
    wrong = {**env, "ENERGY_HARNESS_BMC_PASSWORD": "not-" + PASSWORD}
    results["probes, wrong password"] = cli("probes", env=wrong)
    results["measure, wrong password"] = cli("measure", "--probe", "bmc", "--", *sleep, env=wrong)
    for name, result in results.items():
        assert not leaks(result.stdout + result.stderr), name
    # what was measured, was measured: the node power is in the outputs
    report = json.loads(results["measure --json"].stdout)
    assert report["domains"][0]["domain"] == "node:power"
    assert report["total_energy_j"] == pytest.approx(server.mean_w * report["duration_s"], rel=0.1)
    assert results["run"].returncode == 0, results["run"].stderr[-2000:]
    assert results["measure, wrong password"].returncode == 2
    assert "refused the credentials" in results["measure, wrong password"].stderr
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"environment.json", "measurements.csv"} <= {p.name for p in written}
    for path in written:
        assert not leaks(path.read_bytes().decode(errors="replace")), path
    environment = (run_dir / "environment.json").read_text()
    assert "node:power" in environment and server.url in environment
    assert "node:power" in Path(run_dir / "measurements.csv").read_text()
