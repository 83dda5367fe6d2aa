"""Join a suite's `ddp-training` cases from a node other than the runner's.

    python -m harness.distributed --node-rank K --nnodes M --nproc-per-node N

With the same MASTER_ADDR/MASTER_PORT as the runner's node, it joins each case in turn
(`--cases C` to stop after C cases; otherwise Ctrl-C). Those nodes read their own counters
(their powercap root from $ENERGY_HARNESS_POWERCAP_ROOT or /sys) and their own model
cache. A rank that dies here shows on the runner's node as the peer error it caused; its
own error is in this command's output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from harness.errors import EnergyHarnessError
from harness.run.ddp.launcher import FOLLOWER_HINT, torchrun_command


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
        prog=FOLLOWER_HINT,
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
