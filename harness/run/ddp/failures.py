"""Why a distributed case failed: which rank first, on which node, with what error.

Each rank that raises writes `errors/rank-R.json` beside the case file (when that folder
is on its node); torchrun prints a root-cause summary. The runner reads both.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from pathlib import Path

from harness.errors import error_text


def failure_message(returncode: int, stderr_text: str, errors_dir: Path) -> str:
    """Which rank failed first and why: torchrun's root cause, the rank's own record."""
    records = {}
    for path in sorted(errors_dir.glob("rank-*.json")) if errors_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
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


def write_rank_error(errors_dir: Path | None, exc: BaseException) -> None:
    """Record this rank's error for the runner (when the runner's folder is on this node)."""
    if errors_dir is None or not errors_dir.parent.is_dir():
        return
    rank = os.environ.get("RANK", "?")
    record = {
        "rank": rank,
        "node": os.environ.get("GROUP_RANK", "?"),
        "local_rank": os.environ.get("LOCAL_RANK", "?"),
        "time": time.time(),
        "error": error_text(exc),
    }
    try:
        errors_dir.mkdir(exist_ok=True)
        tmp = errors_dir / f"rank-{rank}.json.tmp"
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, errors_dir / f"rank-{rank}.json")
    except OSError:
        pass  # the rank's own exception matters more; torchrun still records it
