"""`energy-harness probes` and `measure`, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FakeZone

FAKES = str(Path(__file__).resolve().parents[2] / "fakes")  # a fake pynvml for subprocesses


def fake_nvml_env(*gpus: dict, **extra: str) -> dict:
    """Environment under which `import pynvml` finds tests/fakes/pynvml.py seeing `gpus`."""
    return {"PYTHONPATH": FAKES, "FAKE_NVML": json.dumps({"gpus": list(gpus)}), **extra}


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
    assert 0 <= report["other_cpu_pct"] <= 100  # a 1 s command: long enough for a figure
    assert report["domains"] == [
        {
            "probe": "rapl",
            "domain": "cpu:package-0",
            "energy_j": report["total_energy_j"],
            "source": "counter",
            "in_total": True,
            "note": "RAPL intel-rapl:0",
            "invalid_reason": "",
        }
    ]
    assert report["warnings"] == []


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


def test_a_file_that_is_not_executable_exits_126_with_no_measurement(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    if os.access(script, os.X_OK):
        pytest.skip("this user may execute any file (no permission bits to refuse it)")
    result = cli("measure", "--probe", "model", "--", str(script))
    assert result.returncode == 126
    assert result.stderr.strip() == f"energy-harness: permission denied: {script}"
    assert result.stdout == ""
    as_json = cli("measure", "--probe", "model", "--json", "--", str(script))
    assert as_json.returncode == 126
    assert json.loads(as_json.stdout) == {"started": False, "exit_code": 126}  # no figures


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


def test_measure_json_gives_each_invalid_domain_its_reason(fake_powercap, tmp_path):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 10.0, offset_uj=50_000_000)])
    started = tmp_path / "started"
    code = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(0.6)"
    args = ["measure", "--json", "--probe", "rapl", "--powercap-root", str(tree.root)]
    child = subprocess.Popen(
        [sys.executable, "-m", "harness", *args, "--", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    tree.set_raw("intel-rapl:0", 10_000_000)  # 40 J backwards inside the window
    stdout, _ = child.communicate(timeout=120)
    report = json.loads(stdout)
    (domain,) = report["domains"]
    assert domain["energy_j"] is None and report["total_energy_j"] is None
    assert "went backwards" in domain["invalid_reason"]
    assert domain["note"] == "RAPL intel-rapl:0"  # unchanged: the reason has its own field
    assert report["warnings"] == [f"cpu:package-0: INVALID: {domain['invalid_reason']}"]


def test_measure_json_warns_about_a_zone_left_out(fake_powercap):
    zones = [
        FakeZone("intel-rapl:0", "package-0", 30.0),
        FakeZone("intel-rapl:0:0", "dram", 5.0, counter=False),
    ]
    tree = fake_powercap(zones)
    args = ["measure", "--json", "--probe", "rapl", "--powercap-root", str(tree.root)]
    result = cli(*args, "--", sys.executable, "-c", "import time; time.sleep(0.5)")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [d["domain"] for d in report["domains"]] == ["cpu:package-0"]
    assert report["total_energy_j"] == pytest.approx(30 * report["duration_s"], rel=0.02)
    (warning,) = report["warnings"]
    assert "dram (intel-rapl:0:0) is left out" in warning and "energy_uj" in warning
    text = cli("probes", "--powercap-root", str(tree.root))
    assert "warning: rapl: dram (intel-rapl:0:0) is left out" in " ".join(text.stdout.split())


def test_a_gpu_nvml_cannot_measure_never_stops_the_command():
    jetson = {"uuid": "GPU-jetson-0000", "power_w": 10.0, "counter": False, "power": False}
    env = fake_nvml_env(jetson, CUDA_VISIBLE_DEVICES="0")
    probes = {r["name"]: r for r in json.loads(cli("probes", "--json", env=env).stdout)}
    assert probes["nvml"]["available"] is False
    assert "Not Supported" in probes["nvml"]["reason"]
    result = cli("measure", "--json", "--", sys.executable, "-c", "print('ran')", env=env)
    assert result.returncode == 0 and "ran" in result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert any("gpu:0" in w and "left out" in w for w in report["warnings"])
    assert "nvml" not in {d["probe"] for d in report["domains"]}


def test_a_mig_selector_with_default_probes_says_the_gpu_is_not_measured():
    gpu = {"uuid": "GPU-eeee-0000", "power_w": 200.0}
    env = fake_nvml_env(gpu, CUDA_VISIBLE_DEVICES="MIG-4f5e6d7c-1111")
    result = cli("measure", "--json", "--", sys.executable, "-c", "pass", env=env)
    assert result.returncode == 0
    report = json.loads(result.stdout)
    (warning,) = [w for w in report["warnings"] if "MIG" in w]
    assert "nvml: the GPU is not measured" in warning and "per physical GPU" in warning
    text = cli("measure", "--", sys.executable, "-c", "pass", env=env)
    assert "warning: nvml: the GPU is not measured" in " ".join(text.stderr.split())


def test_probes_at_80_columns_print_every_reason_whole_below_the_table():
    env = {"COLUMNS": "80", "ENERGY_HARNESS_POWERCAP_ROOT": "/nonexistent"}
    result = cli("probes", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.stdout
    statuses = {r["name"]: r for r in json.loads(cli("probes", "--json", env=env).stdout)}
    words = " ".join(result.stdout.split())
    for name, status in statuses.items():
        if not status["available"]:  # whole, after the table, words never cut
            assert f"{name}: {' '.join(status['reason'].split())}" in words
    if not statuses["pyrapl"]["available"]:
        assert any("'energy-harness[pyrapl]'" in line for line in lines)
