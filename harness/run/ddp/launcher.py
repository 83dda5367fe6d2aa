"""Launch one node of a `ddp-training` case under torch.distributed.run and collect its rows.

    python -m torch.distributed.run --nproc-per-node N --nnodes M ... \\
        -m harness.run.ddp.worker --spec CASE.json

(`--standalone` on one node; with `nnodes > 1`, `--node-rank 0 --master-addr
$MASTER_ADDR --master-port $MASTER_PORT`, so this node holds global ranks 0..N-1).
Global rank 0 appends one JSON line per repetition to a results file; the launcher tails
it and hands each line on at once. torchrun runs in its own process group, which is
stopped if this process is interrupted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.run.child import stop_process_group

WORKER_MODULE = "harness.run.ddp.worker"
FOLLOWER_HINT = "python -m harness.distributed"
POLL_S = 0.1
STOP_GRACE_S = 15.0


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
            "node); then start node K = 1 .. nnodes-1 with `{FOLLOWER_HINT} "
            f"--node-rank K --nnodes {nnodes} --nproc-per-node {nproc_per_node}`"
        )
    return [
        f"--node-rank={node_rank}",
        f"--master-addr={master_addr}",
        f"--master-port={master_port}",
    ]


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
    root = str(Path(__file__).resolve().parents[3])  # `-m harness...` from any cwd
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
            stop_process_group(proc, STOP_GRACE_S)
            raise
    for record in tail.new_records():
        on_repetition(record)
    return proc.returncode, stderr_path.read_text(errors="replace")
