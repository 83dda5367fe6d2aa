"""ddp-training cases under torchrun (gloo, 2 ranks on this machine) on fake powercap trees."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FakePowercap, FakeZone, memory_dir

from harness.errors import EnergyHarnessError
from harness.measure.meter import EnergyMeter
from harness.rows.csvfile import read_rows
from harness.run.ddp.failures import failure_message
from harness.run.ddp.launcher import rendezvous_args
from harness.run.ddp.ownership import owned_probes, owns_domain
from harness.run.options import RunOptions
from harness.run.runner import run_suite
from harness.spec.suite import parse_suite
from probes.base import SOURCE_COUNTER, Domain, Probe, Reading

PACKAGE_W, CORE_W, DRAM_W = 20.0, 12.0, 5.0
HERE = Path(__file__).parent

SUITE = """
[suite]
repetitions = 2
warmup_iterations = 1
min_window_s = 0.6
idle_baseline_s = 0.3
timeline_hz = 0
train_epochs = 1
batch_sizes = [16]
modes = ["ddp-training"]
nproc_per_node = 2

[[models]]
name = "ddp_models:dies_on_rank_1"

[[models]]
name = "lenet5"
"""
TWO_NODES = """
[suite]
repetitions = 1
warmup_iterations = 1
min_window_s = 0.6
idle_baseline_s = 0
timeline_hz = 0
train_epochs = 1
batch_sizes = [16]
modes = ["ddp-training"]
nproc_per_node = 1
nnodes = 2

[[models]]
name = "lenet5"
"""
DYING = "ddp_models:dies_on_rank_1/dense/ddp-training/bs16/cpu"
LENET = "lenet5/dense/ddp-training/bs16/cpu"


def _zones(package_w: float) -> list[FakeZone]:
    return [
        FakeZone("intel-rapl:0", "package-0", package_w),
        FakeZone("intel-rapl:0:0", "core", CORE_W),
        FakeZone("intel-rapl:0:1", "dram", DRAM_W),
    ]


@pytest.fixture(scope="module")
def single_threaded():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))  # ddp_models, a user's model module
    yield
    sys.path.remove(str(HERE))
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Prepared models shared by this file's runs (LeNet-5 is trained once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def ddp_run(single_threaded, cache_dir, tmp_path_factory):
    """A suite of a case whose rank 1 dies, then LeNet-5 on 2 gloo ranks, at known power."""
    tree = FakePowercap(memory_dir(tmp_path_factory.mktemp("powercap")), _zones(PACKAGE_W))
    tree.start()
    options = RunOptions(probes=["rapl", "model"], powercap_root=tree.root, cache_dir=cache_dir)
    try:
        out = tmp_path_factory.mktemp("runs") / "ddp"
        yield run_suite(parse_suite(SUITE, "ddp.toml"), options, out=out)
    finally:
        tree.stop()
        shutil.rmtree(tree.root, ignore_errors=True)


def _in_total_sums(rows: list[dict[str, str]]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for row in rows:
        if row["in_total"] == "true":
            sums[row["repetition"]] = sums.get(row["repetition"], 0.0) + float(row["energy_j"])
    return sums


def test_node_package_is_counted_once_and_matches_power_times_time(ddp_run):
    rows = [r for r in read_rows(ddp_run / "measurements.csv") if r["case_id"] == LENET]
    reps = sorted({r["repetition"] for r in rows})
    assert reps == ["0", "1"]
    for rep in reps:
        package = [r for r in rows if r["repetition"] == rep and r["domain"] == "cpu:package-0"]
        assert len(package) == 1, "the node's package must be read by one rank only"
        assert (package[0]["node"], package[0]["rank"]) == ("0", "0")
        # the modelled CPU/RAM of the node's process tree: read once too, never added
        model = [r for r in rows if r["repetition"] == rep and r["probe"] == "model"]
        assert {(r["rank"], r["in_total"]) for r in model} == {("0", "false")}
        assert len(model) == 2
    sums = _in_total_sums(rows)
    for rep, energy_j in sums.items():
        duration_s = float(next(r["duration_s"] for r in rows if r["repetition"] == rep))
        assert energy_j == pytest.approx((PACKAGE_W + DRAM_W) * duration_s, rel=0.03), rep
    case = next(r for r in read_rows(ddp_run / "cases.csv") if r["case_id"] == LENET)
    assert case["status"] == "ok" and case["world_size"] == "2"
    assert case["measured_source"] == "counter"
    # the case total is the rows' total: energy per window and per sample of all ranks
    assert float(case["energy_j"]) == pytest.approx(sum(sums.values()) / len(sums), rel=1e-9)
    per_sample = [
        sums[rep] / float(next(r["samples"] for r in rows if r["repetition"] == rep))
        for rep in reps
    ]
    assert float(case["energy_j_per_sample_mean"]) == pytest.approx(
        sum(per_sample) / len(per_sample), rel=1e-9
    )
    assert float(case["energy_j"]) == pytest.approx(
        (PACKAGE_W + DRAM_W) * float(case["duration_s"]), rel=0.03
    )


def test_samples_are_every_ranks_and_rows_carry_node_and_rank(ddp_run):
    rows = [r for r in read_rows(ddp_run / "measurements.csv") if r["case_id"] == LENET]
    case = next(r for r in read_rows(ddp_run / "cases.csv") if r["case_id"] == LENET)
    for row in rows:
        # every rank ran the same steps; samples count both ranks' batches
        assert int(row["samples"]) == 2 * 16 * int(row["iterations"])
        assert float(row["energy_j_per_sample"]) == pytest.approx(
            float(row["energy_j"]) / int(row["samples"])
        )
    assert float(case["throughput_samples_per_s"]) == pytest.approx(
        2 * 16 / float(case["latency_s_per_batch"])
    )


def test_estimate_counts_the_ring_all_reduce(ddp_run):
    case = next(r for r in read_rows(ddp_run / "cases.csv") if r["case_id"] == LENET)
    steps = int(case["iterations"]) * 2  # both ranks' steps of one window
    grad_bytes = int(case["params"]) * 4  # float32 gradients, all trainable
    # ring all-reduce: 2 (N - 1) / N x gradient bytes per rank per step, N = 2
    assert float(case["comm_bytes_interconnect"]) == pytest.approx(grad_bytes * steps)
    assert float(case["est_dense_hw_communication_j"]) > 0


def test_a_dying_rank_fails_its_case_and_the_suite_goes_on(ddp_run):
    cases = {r["case_id"]: r for r in read_rows(ddp_run / "cases.csv")}
    dying = cases[DYING]
    assert dying["status"] == "failed"
    assert "rank 1 (node 0, local rank 1" in dying["error"]
    assert "RuntimeError: rank 1 dies on purpose" in dying["error"]
    assert cases[LENET]["status"] == "ok"
    rows = read_rows(ddp_run / "measurements.csv")
    assert not [r for r in rows if r["case_id"] == DYING]  # it died before any window


def test_two_nodes_each_read_their_own_counters_once(
    single_threaded, cache_dir, tmp_path, monkeypatch
):
    """Node 1 (a follower on this machine) reads its own tree, at another power."""
    node1_package_w = 2 * PACKAGE_W
    trees = [
        FakePowercap(memory_dir(tmp_path / f"pc{i}"), _zones(w)).start()
        for i, w in enumerate((PACKAGE_W, node1_package_w))
    ]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", port)
    follower_env = {**os.environ, "ENERGY_HARNESS_POWERCAP_ROOT": str(trees[1].root)}
    follower = subprocess.Popen(
        [sys.executable, "-m", "harness.distributed", "--node-rank", "1"]
        + ["--nnodes", "2", "--nproc-per-node", "1", "--cases", "1"],
        env=follower_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = RunOptions(probes=["rapl"], powercap_root=trees[0].root, cache_dir=cache_dir)
    try:
        run_dir = run_suite(parse_suite(TWO_NODES, "two.toml"), options, out=tmp_path / "run")
        assert follower.wait(timeout=60) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        for tree in trees:
            tree.stop()
            shutil.rmtree(tree.root, ignore_errors=True)
    case = read_rows(run_dir / "cases.csv")[0]
    assert case["status"] == "ok", case["error"]
    rows = read_rows(run_dir / "measurements.csv")
    package = {r["node"]: r for r in rows if r["domain"] == "cpu:package-0"}
    assert sorted(package) == ["0", "1"] and package["1"]["rank"] == "1"
    for node, power_w in (("0", PACKAGE_W), ("1", node1_package_w)):
        expected_j = power_w * float(package[node]["duration_s"])
        assert float(package[node]["energy_j"]) == pytest.approx(expected_j, rel=0.03), node
    total_j = sum(float(r["energy_j"]) for r in rows if r["in_total"] == "true")
    assert float(case["energy_j"]) == pytest.approx(total_j, rel=1e-9)
    assert len([r for r in rows if r["in_total"] == "true"]) == 4  # package + dram per node


def _domain(name: str, scope: str) -> Domain:
    return Domain(name, SOURCE_COUNTER, scope)


@pytest.mark.parametrize(
    ("scope", "local_rank", "gpu_index", "gpus_in_use", "owns"),
    [
        ("cpu", 0, None, (), True),  # node domains: local rank 0
        ("cpu", 1, None, (), False),
        ("platform", 1, 1, (0, 1), False),
        ("gpu:1", 1, 1, (0, 1), True),  # its own GPU
        ("gpu:1", 0, 0, (0, 1), False),  # another rank's GPU
        ("gpu:3", 0, 0, (0, 1), True),  # a GPU no rank uses: whole-node, local rank 0
        ("gpu:0", 0, None, (), True),  # CPU ranks: GPUs are node hardware
        ("gpu:0", 1, None, (), False),
    ],
)
def test_each_counter_has_exactly_one_owner(scope, local_rank, gpu_index, gpus_in_use, owns):
    domain = _domain(scope if scope.startswith("gpu") else f"{scope}:x", scope)
    assert (
        owns_domain(domain, local_rank=local_rank, gpu_index=gpu_index, gpus_in_use=gpus_in_use)
        is owns
    )


class TwoGpus(Probe):
    """Fake hardware: two GPUs at 100 W and 200 W (counters = power x reads so far)."""

    name = "fakegpu"
    source = SOURCE_COUNTER

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.closed = False

    def unavailable_reason(self) -> str | None:
        return None

    def domains(self) -> list[Domain]:
        return [_domain("gpu:0", "gpu:0"), _domain("gpu:1", "gpu:1")]

    def read(self) -> Reading:
        self.reads += 1
        return Reading(
            float(self.reads), {"gpu:0": 100.0 * self.reads, "gpu:1": 200.0 * self.reads}
        )

    def close(self) -> None:
        self.closed = True


def test_a_gpu_rank_reads_only_its_own_gpu():
    gpu_ranks = {"gpus_in_use": (0, 1)}
    rank1 = owned_probes([TwoGpus()], local_rank=1, gpu_index=1, **gpu_ranks)
    assert [d.name for p in rank1 for d in p.domains()] == ["gpu:1"]
    with EnergyMeter(rank1) as meter, meter.window("w") as window:
        pass
    assert [(d.domain, d.energy_j, d.in_total) for d in window.measurement.domains] == [
        ("gpu:1", 200.0, True)
    ]
    rank0 = owned_probes([TwoGpus()], local_rank=0, gpu_index=0, **gpu_ranks)
    assert [d.name for p in rank0 for d in p.domains()] == ["gpu:0"]
    # a CPU rank other than local rank 0 owns no GPU: the probe is closed, not read
    probe = TwoGpus()
    assert owned_probes([probe], local_rank=1, gpu_index=None, gpus_in_use=()) == []
    assert probe.closed and probe.reads == 0


def test_several_nodes_need_the_rendezvous_variables():
    assert rendezvous_args(1, 2) == ["--standalone"]
    with pytest.raises(EnergyHarnessError, match="MASTER_ADDR and MASTER_PORT"):
        rendezvous_args(2, 2)
    assert "--node-rank=0" in rendezvous_args(2, 2, 0, "10.0.0.1", 29500)


# torchrun's summary when rank 1 was killed (SIGKILL) and rank 0 then stopped (SIGTERM)
KILLED = """
Failures:
[1]:
  time      : 2026-11-28_20:09:56
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 23654)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 23654
-------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-28_20:09:56
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 23655)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 23655
=======================================================
"""


def test_a_killed_rank_is_named_with_its_signal(tmp_path):
    message = failure_message(1, KILLED, tmp_path / "errors")
    assert message.startswith("rank 1 (local rank 1) exited with code -9 (SIGKILL)")
    assert "Signal 9 (SIGKILL) received by PID 23655" in message


def test_torchruns_root_cause_picks_the_ranks_own_record(tmp_path):
    errors = tmp_path / "errors"
    errors.mkdir()
    for rank, when, error in ((0, 1.0, "RuntimeError: peer closed"), (1, 2.0, "ValueError: x")):
        record = {"rank": str(rank), "node": "0", "local_rank": str(rank), "time": when}
        (errors / f"rank-{rank}.json").write_text(json.dumps({**record, "error": error}))
    message = failure_message(1, KILLED, errors)
    assert message == "rank 1 (node 0, local rank 1, exit code -9) failed: ValueError: x"
    # without torchrun's summary, the earliest record is the first failure
    assert "RuntimeError: peer closed" in failure_message(1, "", errors)
