"""Stopping a child process that runs in a process group of its own (a worker measuring
rounds, torchrun and its ranks): the one way the runner ends what it started."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(proc: subprocess.Popen, grace_s: float) -> None:
    """Stop a child started in a process group of its own (and everything it started):
    SIGTERM, then SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
