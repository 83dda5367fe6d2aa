"""The runner's side of the worker processes that measure rounds (`harness.run.worker`).

    python -m harness.run.worker SPEC.json FD

The runner writes what a worker needs (the suite as written, its cases, its rounds,
probes, idle power, where the prepared models are cached) to SPEC.json and reads one
JSON line per event from the pipe FD: a window as soon as it ends, a case whose step
failed, and `done`. The worker's own output (a user model's prints, warnings) goes to a
log file whose tail is said if it fails. It runs in a process group of its own, stopped
if the runner is interrupted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.prepare.cache import ModelCache
from harness.rows.measurements import WindowPlace
from harness.run.case import CaseContext
from harness.run.child import stop_process_group
from harness.run.rounds import CaseFailed, RoundPlan, RoundSettings, WindowDone
from harness.spec.case import Case

WORKER_MODULE = "harness.run.worker"
STOP_GRACE_S = 10.0
LOG_TAIL_CHARS = 800


def worker_spec(
    ctx: CaseContext,
    cases: Sequence[Case],
    plans: Sequence[RoundPlan],
    settings: RoundSettings,
    cache: ModelCache,
    iterations: dict[str, int],
) -> dict[str, Any]:
    """What one worker needs to measure `plans` of `cases` (JSON-ready)."""
    first = ctx.meter.probes[0].options if ctx.meter.probes else None
    return {
        "suite_text": ctx.suite.text,
        "suite_source": ctx.suite.source,
        "suite_settings": ctx.suite.settings.to_dict(),
        "case_ids": [c.case_id for c in cases],
        "plans": [[p.round, list(p.case_ids)] for p in plans],
        "iterations": iterations,
        "min_window_s": settings.min_window_s,
        "warmup_iterations": settings.warmup_iterations,
        "process": settings.process,
        "peer_country": settings.peer_country,
        "probes": [p.name for p in ctx.meter.probes],
        "powercap_root": str(first.powercap_root) if first and first.powercap_root else None,
        "idle_power_w": dict(ctx.meter.idle_power_w),
        "cache_dir": str(cache.root),
        "sys_path": [p for p in sys.path if p],
    }


def event_of(line: dict[str, Any]) -> WindowDone | CaseFailed | None:
    """A worker's JSON line as the event it stands for (None for `done`)."""
    if line["kind"] == "window":
        place = WindowPlace(**line["place"])
        return WindowDone(line["case_id"], place, line["record"], line.get("peer_energy_j"))
    if line["kind"] == "failed":
        return CaseFailed(line["case_id"], line["error"])
    return None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # `-m harness...` from any cwd
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
    return env


def run_worker(
    spec: dict[str, Any], work: Path, on_window: Callable[[str, int], None] | None = None
) -> Iterator[WindowDone | CaseFailed]:
    """Start a fresh worker on `spec` and yield its events as they come. `on_window(case_id,
    round)` hears each window that starts. Raises EnergyHarnessError (with the tail of
    its output) when it ends without saying `done`."""
    name = f"process-{spec['process']}"
    spec_path, log_path = work / f"{name}.json", work / f"{name}.log"
    spec_path.write_text(json.dumps(spec))
    read_fd, write_fd = os.pipe()
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(spec_path), str(write_fd)],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=_env(),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
    done = False
    try:
        with os.fdopen(read_fd, "r", encoding="utf-8") as stream:
            for text in stream:
                line = json.loads(text)
                if line["kind"] == "starting" and on_window is not None:
                    on_window(line["case_id"], line["round"])
                elif line["kind"] == "done":
                    done = True
                elif line["kind"] == "error":
                    raise EnergyHarnessError(f"worker process {spec['process']}: {line['error']}")
                else:
                    event = event_of(line)
                    if event is not None:
                        yield event
        proc.wait()
    except BaseException:
        stop_process_group(proc, STOP_GRACE_S)
        raise
    if not done:
        tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:].strip()
        raise EnergyHarnessError(
            f"worker process {spec['process']} ended (exit code {proc.returncode}) before "
            f"its rounds were done; its last output: {tail or '(none)'}"
        )
