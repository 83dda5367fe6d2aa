"""Under torchrun (2 ranks, gloo) the node's counters are counted once and rank 0 writes."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TOTAL_W = 25.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_count_the_node_once(fake_powercap, tmp_path):
    tree = fake_powercap()
    out = tmp_path / "run"
    env = {
        **os.environ,
        "ENERGY_HARNESS_POWERCAP_ROOT": str(tree.root),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
            str(HERE / "ddp_loop.py"),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("ddp: ") == 1  # one closing line: rank 0's
    rows = list(csv.DictReader(open(out / "measurements.csv")))
    epochs = [r for r in rows if r["variant"] == "epoch"]
    assert {r["rank"] for r in epochs} == {"0"}  # the node's domains are local rank 0's
    for rep in ("0", "1", "2"):
        counted = [r for r in epochs if r["repetition"] == rep and r["in_total"] == "true"]
        assert sorted(r["domain"] for r in counted) == ["cpu:dram-0", "cpu:package-0"]
        energy_j = sum(float(r["energy_j"]) for r in counted)
        assert energy_j == pytest.approx(TOTAL_W * float(counted[0]["duration_s"]), rel=0.02)
        assert counted[0]["samples"] == "20"  # both ranks' samples
