"""`energy-harness probes` and `measure`, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import FakeZone


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_measure_json_reports_fake_rapl_energy_and_exit_code(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 40.0)])
    code = "import time, sys; print('child output'); time.sleep(1.0); sys.exit(7)"
    result = cli(
        "measure",
        "--json",
        "--probe",
        "rapl",
        "--powercap-root",
        str(tree.root),
        "--",
        sys.executable,
        "-c",
        code,
    )
    assert result.returncode == 7
    report = json.loads(result.stdout)  # stdout holds exactly one JSON object
    assert "child output" in result.stderr
    assert report["exit_code"] == 7
    assert report["total_energy_j"] == pytest.approx(40 * report["duration_s"], rel=0.02)
    assert report["domains"] == [
        {
            "probe": "rapl",
            "domain": "cpu:package-0",
            "energy_j": report["total_energy_j"],
            "source": "counter",
            "in_total": True,
            "note": "RAPL intel-rapl:0",
        }
    ]


def test_measure_human_output_labels_modelled_figures():
    result = cli("measure", "--probe", "model", "--", sys.executable, "-c", "pass")
    assert result.returncode == 0
    assert "MODELLED" in result.stderr and "cpu:model" in result.stderr


def test_env_powercap_root_is_honoured_by_probes(fake_powercap):
    tree = fake_powercap()
    result = cli("probes", "--json", env={"ENERGY_HARNESS_POWERCAP_ROOT": str(tree.root)})
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["rapl"]["available"] is True
    assert "cpu:dram-0" in rows["rapl"]["domains"]
    assert rows["model"]["source"] == "model"


def test_command_not_found_exits_127():
    result = cli("measure", "--probe", "model", "--", "no-such-command-xyz")
    assert result.returncode == 127
    assert "command not found: no-such-command-xyz" in result.stderr


def test_unknown_probe_and_missing_command_are_usage_errors():
    result = cli("measure", "--probe", "gpu9", "--", "true")
    assert result.returncode == 2
    assert "unknown probe 'gpu9'" in result.stderr and "model" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("measure")
    assert result.returncode == 2 and "after `--`" in result.stderr


def test_sigterm_is_forwarded_and_what_was_measured_is_printed(tmp_path):
    import signal

    marker = tmp_path / "child-got"
    code = (
        "import signal, sys, time\n"
        "def stop(signum, frame):\n"
        f"    open({str(marker)!r}, 'w').write(str(signum)); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness", "measure", "--probe", "model", "--json", "--"]
        + [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert harness.stderr.readline().strip() == "started"  # the child's stdout, on stderr
    harness.send_signal(signal.SIGTERM)
    stdout, stderr = harness.communicate(timeout=60)
    assert harness.returncode == 143, stderr
    assert marker.read_text() == str(signal.SIGTERM)  # the child got it and stopped
    report = json.loads(stdout)
    assert report["exit_code"] == 143 and report["total_source"] == "model"
    assert report["duration_s"] > 0 and report["total_energy_j"] >= 0
    assert any("stopped by SIGTERM" in w for w in report["warnings"])
