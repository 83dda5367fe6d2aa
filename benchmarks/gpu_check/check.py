"""Validate the NVML path on a real GPU: `python -m benchmarks.gpu_check [--out FILE] [--quick]`.

This module runs the six steps in order under a deadline, turns an exception in a step
into a failed step, and writes the JSON record (machine facts, budget, every step).
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.nvml_tools import nvml_presence
from benchmarks.gpu_check.records import (
    FAILED,
    FULL,
    NO_GPU,
    OK,
    QUICK,
    SKIPPED,
    Budget,
    Context,
    Step,
    as_text,
    finite,
)
from benchmarks.gpu_check.step_calibrate import step_calibrate
from benchmarks.gpu_check.step_idle import step_idle
from benchmarks.gpu_check.step_overhead import step_overhead
from benchmarks.gpu_check.step_power import step_counter_vs_power
from benchmarks.gpu_check.step_probes import step_probes
from benchmarks.gpu_check.step_suite import step_suite

SCHEMA_VERSION = 1

STEPS: list[tuple[int, str, str, Callable[[Context, Step], None]]] = [
    (1, "probes", "energy-harness probes; NVML available with the energy counter", step_probes),
    (2, "idle", "idle power per GPU (counter) and the counter's update period", step_idle),
    (
        3,
        "counter-vs-power",
        "bf16 loop: counter vs integrated instant power",
        step_counter_vs_power,
    ),
    (4, "overhead", "cost of one begin+end window pair per probe", step_overhead),
    (5, "gpu-suite", "resnet18 bs256 inference: measured vs estimated J/sample", step_suite),
    (
        6,
        "calibrate",
        "calibrate --small on the GPU; leave-one-out of the suite cases",
        step_calibrate,
    ),
]


def machine_record(ctx: Context) -> dict[str, Any]:
    """Host, Python, torch and GPU facts for the JSON."""
    from importlib import metadata

    record: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for package in ("torch", "nvidia-ml-py", "energy-harness"):
        try:
            record[f"{package}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            record[f"{package}_version"] = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        record["cuda_device"] = torch.cuda.get_device_name(0)
        record["cuda_runtime"] = torch.version.cuda
    if ctx.nvml is not None:
        try:
            record["nvml_driver_version"] = as_text(ctx.nvml.nvmlSystemGetDriverVersion())
        except Exception as exc:
            record["nvml_driver_version"] = f"unknown ({as_text(exc)})"
    record["no_gpu_reason"] = ctx.no_gpu_reason or None
    return record


def default_out(now: datetime | None = None) -> Path:
    """results/validation/gpu_check-<UTC time>.json"""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / "validation" / f"gpu_check-{stamp}.json"


def start_context(budget: Budget, run_dir: Path | None) -> Context:
    """The shared context: whether NVML sees a GPU and, if so, whether torch can use it."""
    nvml, why = nvml_presence()
    ctx = Context(budget=budget, nvml=nvml, no_gpu_reason=why, run_dir=run_dir)
    if not why:
        try:
            import torch

            if not torch.cuda.is_available():
                ctx.cuda_reason = f"torch {torch.__version__} sees no CUDA device"
        except ImportError:
            ctx.cuda_reason = "torch is not installed"
    else:
        print(f"no GPU steps here: {NO_GPU}: {why}", flush=True)
    return ctx


def run_step(
    ctx: Context,
    entry: tuple[int, str, str, Callable[[Context, Step], None]],
    *,
    t_start: float,
    deadline_s: float,
) -> Step:
    """Run one entry of STEPS unless the deadline passed; an exception fails the step."""
    number, name, title, run = entry
    step = Step(number, name, title, ctx.budget.step_budget_s(number))
    print(f"=== step {number}: {title}", flush=True)
    t0 = time.monotonic()
    if t0 - t_start > deadline_s:
        step.fail(f"not started: the check's deadline ({deadline_s:g} s) had passed")
    else:
        try:
            run(ctx, step)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            step.fail(
                f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
            )
    step.duration_s = time.monotonic() - t0
    return step


def run_check(
    budget: Budget, *, quick: bool, out: Path, deadline_s: float, run_dir: Path | None = None
) -> dict[str, Any]:
    """Run the six steps, write the JSON to `out`, return it."""
    started_utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.monotonic()
    ctx = start_context(budget, run_dir)
    steps = [run_step(ctx, entry, t_start=t_start, deadline_s=deadline_s) for entry in STEPS]
    failed = [s.name for s in steps if s.status == FAILED]
    skipped = [s.name for s in steps if s.status == SKIPPED]
    record = {
        "check": "benchmarks.gpu_check",
        "schema_version": SCHEMA_VERSION,
        "status": FAILED if failed else OK,
        "exit_code": 1 if failed else 0,
        "failed_steps": failed,
        "skipped_steps": skipped,
        "quick": quick,
        "started_utc": started_utc,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - t_start,
        "machine": machine_record(ctx),
        "budget": asdict(budget),
        "steps": [asdict(s) for s in steps],
    }
    record = finite(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    print(
        f"=== {record['status'].upper()} in {record['duration_s']:.0f} s: "
        f"failed {failed or 'none'}, skipped {skipped or 'none'}; wrote {out}",
        flush=True,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the check; returns the exit status (1 if a check failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, help="JSON file (default results/validation/...)")
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=450.0,
        help="start no step after this many seconds (default 450)",
    )
    parser.add_argument("--run-dir", type=Path, help="keep step 5's suite run and model cache here")
    args = parser.parse_args(argv)
    record = run_check(
        QUICK if args.quick else FULL,
        quick=args.quick,
        out=args.out or default_out(),
        deadline_s=args.deadline_s,
        run_dir=args.run_dir,
    )
    return int(record["exit_code"])
