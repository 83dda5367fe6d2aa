"""Distributed (DDP) training energy: a `ddp-training` case run under torch.distributed.run.

The runner prepares the model (into the cache), writes a case file, and launches

    python -m torch.distributed.run --nproc-per-node N --nnodes M ... \\
        -m harness.ddp_worker --spec CASE.json

(`--standalone` on one node; with `nnodes > 1`, `--node-rank 0 --master-addr
$MASTER_ADDR --master-port $MASTER_PORT`, so this node holds global ranks 0..N-1).
Backend: gloo on CPU, NCCL for DDP's gradient all-reduce on GPUs (rank k on cuda:k,
choose the GPUs with CUDA_VISIBLE_DEVICES). `batch_size` is per rank. Every rank runs
the same number of steps per window; windows open and close at a barrier.

**Who reads which counter.** Every counter of a node is read by exactly one process:
each rank reads the GPU it runs on (NVML, `gpu:<local rank>`); local rank 0 reads the
whole-node domains (RAPL package, dram, psys; the modelled CPU and RAM of the node's
process tree, rooted at the torchrun agent so it holds every rank; GPUs no rank uses).
A node's package energy is thus counted once, however many ranks share the node.

**What lands in the run's CSVs.** Global rank 0 gathers all ranks' measurements after
each repetition and appends a JSON line to a file the runner tails: each line becomes
measurements.csv rows at once, one per rank x domain, with `node` and `rank`
(`iterations` per rank; `samples` and `energy_j_per_sample` over the whole job's samples,
so the in-total rows of a repetition add up to its energy per sample). The cases.csv
row totals all ranks and nodes (`world_size` ranks; energy per sample over every rank's
samples; counts and `estimated_energy_j` cover all ranks' steps of a window, including
the ring all-reduce's 2 (N - 1) / N x gradient bytes per rank per step).

**Other nodes.** With `nnodes = M > 1`, set MASTER_ADDR (this node's address) and
MASTER_PORT (a free port) before `energy-harness run`, and on node K = 1 .. M-1 run
`python -m harness.distributed --node-rank K --nnodes M --nproc-per-node N` with the
same MASTER_ADDR/MASTER_PORT: it joins each ddp-training case in turn (`--cases C` to stop
after C cases; otherwise Ctrl-C). Those nodes read their own counters (their powercap
root from $ENERGY_HARNESS_POWERCAP_ROOT or /sys) and their own model cache.

The codecarbon peer (`--peer codecarbon`) is not run for these cases: its tracker
would span torchrun's start-up, not the measured windows.

**Failures.** A rank that dies fails the case: the error names the rank, its node and
exit code, and the rank's exception (from the rank's error record or torchrun's
summary); rows of repetitions finished before stay in measurements.csv. The suite goes on.
A rank that dies on another node shows here as the peer error it caused (gloo: connection
closed by peer); its own error is in that node's `python -m harness.distributed` output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import EnergyHarnessError

if TYPE_CHECKING:  # the torch stack is imported where a case runs: followers start fast
    from harness.case_runner import CaseContext
    from harness.suite import Case

WORKER_MODULE = "harness.ddp_worker"
POLL_S = 0.1
STOP_GRACE_S = 15.0
_SOURCE_ORDER = {"counter": 0, "model": 1}


def torchrun_command(
    spec_path: Path | None,
    *,
    nproc_per_node: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | str | None = None,
) -> list[str]:
    """The torch.distributed.run command line of one node of a case.

    One node: `--standalone` (a free local port). Several: static rendezvous at
    MASTER_ADDR:MASTER_PORT, this node at `node_rank`. `spec_path=None` is a follower
    (a node other than the runner's), which gets the case from rank 0.
    """
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc_per_node}",
        f"--nnodes={nnodes}",
        "--max-restarts=0",
    ]
    cmd += rendezvous_args(nnodes, nproc_per_node, node_rank, master_addr, master_port)
    cmd += ["-m", WORKER_MODULE]
    cmd += ["--spec", str(spec_path)] if spec_path is not None else ["--follow"]
    return cmd


def rendezvous_args(
    nnodes: int,
    nproc_per_node: int,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | str | None = None,
) -> list[str]:
    """torchrun's rendezvous options; raises when several nodes lack MASTER_ADDR/PORT."""
    if nnodes == 1:
        return ["--standalone"]
    if not master_addr or not master_port:
        raise EnergyHarnessError(
            f"a ddp-training case over nnodes = {nnodes} needs MASTER_ADDR and MASTER_PORT "
            "in the environment (this node's address and a free port, the same on every "
            "node); then start node K = 1 .. nnodes-1 with `python -m harness.distributed "
            f"--node-rank K --nnodes {nnodes} --nproc-per-node {nproc_per_node}`"
        )
    return [
        f"--node-rank={node_rank}",
        f"--master-addr={master_addr}",
        f"--master-port={master_port}",
    ]


def _check_devices(case: Case, nproc_per_node: int) -> None:
    if not case.device.startswith("cuda"):
        return
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < nproc_per_node:
        raise EnergyHarnessError(
            f"{case.case_id}: nproc_per_node = {nproc_per_node} ranks need one GPU each, but "
            f"{available} CUDA device(s) are visible; lower suite.nproc_per_node or run on CPU"
        )


@dataclass
class RepetitionTotal:
    """One repetition over the whole job: energy of the in-total domains of all ranks."""

    energy_j: float  # NaN when a counted domain was invalid
    dynamic_energy_j: float  # NaN without an idle baseline for every counted domain
    samples: int  # all ranks
    iterations: int  # per rank
    duration_s: float  # the longest rank's window
    sources: set[str] = field(default_factory=set)


def repetition_total(ranks: list[dict[str, Any]]) -> RepetitionTotal:
    """Add up one repetition's ranks (each domain is owned by one rank: no double count)."""
    energy = dynamic = 0.0
    sources: set[str] = set()
    for record in ranks:
        for d in record["domains"]:
            if not d["in_total"]:
                continue
            sources.add(d["source"])
            energy += math.nan if d["energy_j"] is None else d["energy_j"]
            dyn = d.get("dynamic_energy_j")
            dynamic += math.nan if dyn is None else dyn
    return RepetitionTotal(
        energy_j=energy if sources else math.nan,
        dynamic_energy_j=dynamic if sources else math.nan,
        samples=sum(int(r["samples"]) for r in ranks),
        iterations=max(int(r["iterations"]) for r in ranks),
        duration_s=max(float(r["duration_s"]) for r in ranks),
        sources=sources,
    )


def measurement_rows(
    run_id: str, case: Case, repetition: int, ranks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """measurements.csv rows of one repetition: one per rank x domain, with node and rank."""
    world_samples = sum(int(r["samples"]) for r in ranks)
    rows = []
    for record in sorted(ranks, key=lambda r: r["rank"]):
        for d in record["domains"]:
            energy = d["energy_j"]
            rows.append(
                {
                    **case.columns(run_id),
                    "node": record["node"],
                    "rank": record["rank"],
                    "repetition": repetition,
                    "probe": d["probe"],
                    "domain": d["domain"],
                    "source": d["source"],
                    "in_total": d["in_total"],
                    "start_utc": record["start_utc"],
                    "duration_s": record["duration_s"],
                    "iterations": record["iterations"],
                    "samples": world_samples,
                    "energy_j": energy,
                    "idle_power_w": d["idle_power_w"],
                    "dynamic_energy_j": d["dynamic_energy_j"],
                    "energy_j_per_sample": None if energy is None else energy / world_samples,
                    "valid": energy is not None,
                    "note": d["invalid_reason"] or d["note"],
                }
            )
    return rows


def failure_message(returncode: int, stderr_text: str, errors_dir: Path) -> str:
    """Which rank failed first and why: torchrun's root cause, the rank's own record."""
    records = {}
    for path in sorted(errors_dir.glob("rank-*.json")) if errors_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            records[str(record["rank"])] = record
        except (OSError, ValueError, KeyError):
            continue
    section = stderr_text.partition("Root Cause (first observed failure):")[2]
    section = section.split("=" * 20)[0]
    rank_match = re.search(r"^\s*rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\)", section, re.M)
    code_match = re.search(r"^\s*exitcode\s*:\s*(-?\d+)", section, re.M)
    record = None
    if rank_match and rank_match.group(1) in records:
        record = records[rank_match.group(1)]
    elif records and not rank_match:
        record = min(records.values(), key=lambda r: r.get("time", math.inf))
    if record is not None:
        code = f", exit code {code_match.group(1)}" if code_match else ""
        return (
            f"rank {record['rank']} (node {record['node']}, local rank "
            f"{record['local_rank']}{code}) failed: {record['error']}"
        )
    if rank_match:
        code = code_match.group(1) if code_match else "?"
        try:
            reason = f" ({signal.Signals(-int(code)).name})" if int(code) < 0 else ""
        except ValueError:
            reason = ""
        lines = [ln.strip() for ln in section.splitlines() if ln.strip()]
        last = re.sub(r"^traceback\s*:\s*", "", lines[-1]) if lines else ""
        return (
            f"rank {rank_match.group(1)} (local rank {rank_match.group(2)}) exited with code "
            f"{code}{reason}: {last}"
        )
    tail = [ln for ln in stderr_text.splitlines() if ln.strip()][-8:]
    return f"torchrun exited with code {returncode}: " + " | ".join(tail)[-1500:]


class _ResultsTail:
    """Reads complete JSON lines the rank-0 worker appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]


def _stop(proc: subprocess.Popen) -> None:
    """Stop torchrun and its workers (its own process group); SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def launch_and_collect(
    cmd: list[str],
    results_path: Path,
    on_repetition: Callable[[dict[str, Any]], None],
    log_dir: Path,
) -> tuple[int, str]:
    """Run `cmd` (torchrun), handing each repetition line to `on_repetition` as it appears.

    Returns torchrun's exit code and its stderr. torchrun runs in its own process group,
    which is stopped if this process is interrupted.
    """
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    root = str(Path(__file__).resolve().parent.parent)  # `-m harness.ddp_worker` from any cwd
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
    tail = _ResultsTail(results_path)
    stdout_path, stderr_path = log_dir / "torchrun.stdout", log_dir / "torchrun.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        try:
            while proc.poll() is None:
                for record in tail.new_records():
                    on_repetition(record)
                time.sleep(POLL_S)
        except BaseException:
            _stop(proc)
            raise
    for record in tail.new_records():
        on_repetition(record)
    return proc.returncode, stderr_path.read_text(errors="replace")


def run_ddp_case(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """Measure one ddp-training case under torchrun; returns its cases.csv row.

    Raises EnergyHarnessError when a rank fails (the runner records it and goes on),
    VariantUnsupported for a variant that cannot train.
    """
    from harness.cache import ModelCache
    from harness.case_runner import _variant_params
    from harness.compress import VariantUnsupported, prepare_model
    from harness.ddp_worker import ship_batches
    from harness.meter import utc_now_iso
    from harness.training import TrainConfig
    from harness.workloads import make_batch

    s = ctx.suite.settings
    nproc, nnodes = int(s["nproc_per_node"]), int(s["nnodes"])
    world_size = nproc * nnodes
    started = utc_now_iso()
    _check_devices(case, nproc)
    master = (os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"))
    rendezvous_args(nnodes, nproc, 0, *master)  # fails before any training when not set up
    data = ctx.dataset(case)
    work = Path(tempfile.mkdtemp(prefix="energy-harness-ddp-"))
    try:
        cache = ctx.cache if ctx.cache is not None else ModelCache(work / "cache")
        cache.root.mkdir(parents=True, exist_ok=True)
        params = _variant_params(case, ctx.suite)
        prepared = prepare_model(
            case.model,
            data,
            case.variant,
            params,
            seed=s["seed"],
            train_config=TrainConfig(epochs=s["train_epochs"]),
            device=case.device,
            cache=cache,
            log=ctx.log,
        )
        if prepared.variant == "int8-dynamic":
            raise VariantUnsupported(
                case.variant, "dynamic int8 layers have no backward pass: int8 runs inference only"
            )
        if ctx.peer is not None:
            ctx.log(f"{case.case_id}: the {ctx.peer} peer is not run for ddp-training cases")
        min_window_s = max(s["min_window_s"], ctx.meter.min_window_s)
        first = ctx.meter.probes[0].options
        spec = {
            "case": {
                "case_id": case.case_id,
                "model": case.model,
                "dataset": case.dataset,
                "variant": case.variant,
                "batch_size": case.batch_size,
                "device": case.device,
            },
            "variant_params": params,
            "settings": {
                k: s[k]
                for k in ("seed", "train_epochs", "data_root", "warmup_iterations", "repetitions")
            },
            "world_size": world_size,
            "nproc_per_node": nproc,
            "nnodes": nnodes,
            "min_window_s": min_window_s,
            "probes": [p.name for p in ctx.meter.probes],
            "powercap_root": str(first.powercap_root) if first.powercap_root else None,
            "idle_power_w": dict(ctx.meter.idle_power_w),
            "cache_dir": str(cache.root),
            "results_path": str(work / "results.jsonl"),
            "batches_path": str(work / "batches.pt"),
            "sys_path": [p for p in sys.path if p],
        }
        ship_batches(data, Path(spec["batches_path"]), nproc * case.batch_size)
        spec_path = work / "case.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        cmd = torchrun_command(
            spec_path,
            nproc_per_node=nproc,
            nnodes=nnodes,
            master_addr=master[0],
            master_port=master[1],
        )
        backend = "nccl" if case.device.startswith("cuda") else "gloo"
        ctx.log(f"{case.case_id}: torchrun, {nnodes} node(s) x {nproc} ranks, {backend}")
        totals: list[RepetitionTotal] = []

        def on_repetition(record: dict[str, Any]) -> None:
            ctx.measurements.append_many(
                measurement_rows(ctx.run_id, case, record["repetition"], record["ranks"])
            )
            totals.append(repetition_total(record["ranks"]))

        returncode, stderr_text = launch_and_collect(
            cmd, Path(spec["results_path"]), on_repetition, work
        )
        if returncode != 0:
            raise EnergyHarnessError(failure_message(returncode, stderr_text, work / "errors"))
        if len(totals) != s["repetitions"]:
            raise EnergyHarnessError(
                f"torchrun ended without reporting every repetition ({len(totals)} of "
                f"{s['repetitions']}); its last output: {stderr_text[-800:]}"
            )
        inputs, _ = make_batch(
            case.batch_size,
            data=data,
            split="train",
            device=prepared.device,
            input_dtype=prepared.input_dtype,
            seed=s["seed"],
        )
        return _case_row(ctx, case, prepared, inputs, totals, world_size, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _case_row(
    ctx: CaseContext,
    case: Case,
    prepared: Any,
    inputs: Any,
    totals: list[RepetitionTotal],
    world_size: int,
    started: str,
) -> dict[str, Any]:
    """The cases.csv row: job totals per sample, and the estimate with the all-reduce."""
    from harness.case_runner import CaseFigures, measured_case_row
    from harness.stats import summarize

    sources = set().union(*(t.sources for t in totals))
    figures = CaseFigures(
        energy=summarize([t.energy_j / t.samples for t in totals]),
        dynamic=summarize([t.dynamic_energy_j / t.samples for t in totals]),
        duration_s=summarize([t.duration_s for t in totals]).mean,
        latency_s=summarize([t.duration_s / t.iterations for t in totals]).mean,
        iterations=totals[-1].iterations,
        energy_j=summarize([t.energy_j for t in totals]).mean,
        source="+".join(sorted(sources, key=lambda x: _SOURCE_ORDER.get(x, 9))) or "none",
        samples_per_step=case.batch_size * world_size,
        world_size=world_size,
    )
    return measured_case_row(
        ctx, case, prepared, inputs, figures, started, {"world_size": world_size}
    )


def follow(
    node_rank: int,
    nnodes: int,
    nproc_per_node: int,
    *,
    master_addr: str | None,
    master_port: str | None,
    cases: int | None = None,
) -> int:
    """Join the runner's ddp-training cases from another node, one torchrun per case.

    Stops after `cases` cases (None: until interrupted). Returns the last exit code.
    """
    if not 1 <= node_rank < nnodes:
        raise EnergyHarnessError(
            f"--node-rank must be 1 .. {nnodes - 1} (node 0 is the runner's), got {node_rank}"
        )
    cmd = torchrun_command(
        None,
        nproc_per_node=nproc_per_node,
        nnodes=nnodes,
        node_rank=node_rank,
        master_addr=master_addr,
        master_port=master_port,
    )
    done, code = 0, 0
    while cases is None or done < cases:
        print(f"node {node_rank}: waiting for the next ddp-training case ...", flush=True)
        code = subprocess.call(cmd)
        done += 1
        print(f"node {node_rank}: case {done} ended with exit code {code}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.distributed --node-rank K --nnodes M --nproc-per-node N`."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.distributed",
        description="Join a suite's ddp-training cases from a node other than the runner's.",
    )
    parser.add_argument("--node-rank", type=int, required=True, help="1 .. nnodes-1")
    parser.add_argument("--nnodes", type=int, required=True, help="the suite's nnodes")
    parser.add_argument("--nproc-per-node", type=int, required=True, help="suite's nproc_per_node")
    parser.add_argument("--master-addr", default=os.environ.get("MASTER_ADDR"))
    parser.add_argument("--master-port", default=os.environ.get("MASTER_PORT"))
    parser.add_argument("--cases", type=int, default=None, help="stop after this many cases")
    args = parser.parse_args(argv)
    try:
        return follow(
            args.node_rank,
            args.nnodes,
            args.nproc_per_node,
            master_addr=args.master_addr,
            master_port=args.master_port,
            cases=args.cases,
        )
    except EnergyHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
