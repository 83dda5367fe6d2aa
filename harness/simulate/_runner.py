"""The parent's side of the process boundary: run `harness.simulate._worker` on layers
with a time and a memory limit, report progress per layer, and turn any failure into
one line (EnergyHarnessError). Layers that finished before a failure are returned to
the caller's `on_result` (and so cached) all the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError

DEFAULT_TIMEOUT_S = 900.0  # ResNet-18 on a 32x32 array: ~4 min cold
DEFAULT_MEMORY_BYTES = 8 * 2**30  # ResNet-18 in one process: ~3.7 GB


@dataclass(frozen=True)
class Limits:
    """How long the simulator may run and how much address space it may take."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_bytes: int = DEFAULT_MEMORY_BYTES


def _limit_memory(memory_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return apply


def _read_new(out_path: Path, seen: int, on_result: Callable[[list[int], dict], None]) -> int:
    text = out_path.read_text(encoding="utf-8") if out_path.exists() else ""
    lines = text.split("\n")[:-1]  # whole lines only: the last may be being written
    for line in lines[seen:]:
        record = json.loads(line)
        on_result(record["layer"], record["result"])
    return len(lines)


def _failure(proc: subprocess.Popen, err_path: Path, what: str, limits: Limits) -> str:
    lines = [ln for ln in err_path.read_text(errors="replace").splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else ""
    if proc.returncode < 0 or "MemoryError" in last or "Cannot allocate" in last:
        return (
            f"the simulator stopped on {what} ({last or f'signal {-proc.returncode}'}); "
            f"it may have hit the memory limit of {limits.memory_bytes / 2**30:.1f} GiB: "
            "raise it or simulate a smaller model"
        )
    if "No module named 'scalesim'" in last:
        return "SCALE-Sim is not installed: pip install 'energy-harness[simulate]'"
    return f"the simulator failed on {what}: {last or f'exit status {proc.returncode}'}"


def run_layers(
    config: dict[str, Any],
    layers: list[list[int]],
    on_result: Callable[[list[int], dict], None],
    limits: Limits | None = None,
    what: str = "the model",
) -> None:
    """Simulate `layers` (LayerShape.as_list() rows) on `config` in a worker process;
    `on_result(layer, result)` is called for each as it finishes. Raises
    EnergyHarnessError (one line) on a timeout, the memory limit or a simulator error."""
    if not layers:
        return
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="energy-harness-sim-") as tmp:
        job, out, err = Path(tmp, "job.json"), Path(tmp, "out.jsonl"), Path(tmp, "stderr.txt")
        job.write_text(json.dumps({"config": config, "layers": layers}), encoding="utf-8")
        with open(err, "w", encoding="utf-8") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.simulate._worker", str(job), str(out)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_file,
                cwd=tmp,  # anything it writes lands in the temporary folder
                preexec_fn=_limit_memory(limits.memory_bytes) if os.name == "posix" else None,
            )
            _wait(proc, out, on_result, limits, what)
        if proc.returncode != 0:
            raise EnergyHarnessError(_failure(proc, err, what, limits))


def _wait(
    proc: subprocess.Popen,
    out: Path,
    on_result: Callable[[list[int], dict], None],
    limits: Limits,
    what: str,
) -> None:
    deadline = time.monotonic() + limits.timeout_s
    seen = 0
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                seen = _read_new(out, seen, on_result)
                raise EnergyHarnessError(
                    f"the simulation of {what} took longer than {limits.timeout_s:g} s and was "
                    f"stopped ({seen} layer shape(s) finished and cached); raise the time "
                    "limit (--timeout-s) or run it again to go on from the cache"
                )
            seen = _read_new(out, seen, on_result)
            time.sleep(0.05)
    except BaseException:
        if proc.poll() is None:  # Ctrl-C: the worker does not outlive us
            proc.kill()
            proc.wait()
        raise
    _read_new(out, seen, on_result)
