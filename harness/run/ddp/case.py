"""The runner's side of a `ddp-training` case: prepare, launch torchrun, collect, summarise.

**Who reads which counter.** Every counter of a node is read by exactly one process
(`harness.run.ddp.ownership`): each rank reads the GPU it runs on; local rank 0 reads the
whole-node domains (RAPL package, dram, psys; the modelled CPU and RAM of the node's
process tree, rooted at the torchrun agent so it holds every rank; GPUs no rank uses).

**What lands in the run's CSVs.** Global rank 0 gathers all ranks' windows after each
repetition; each repetition becomes measurements.csv rows at once, one per rank x domain,
with `node` and `rank` (`iterations` per rank; `samples` and `energy_j_per_sample` over
the whole job's samples). The cases.csv row totals all ranks and nodes (`world_size`
ranks; counts and `estimated_energy_j` cover all ranks' steps of a window, including the
ring all-reduce's 2 (N - 1) / N x gradient bytes per rank per step).

The codecarbon peer (`--peer codecarbon`) is not run for these cases: its tracker
would span torchrun's start-up, not the measured windows.

**Failures.** A rank that dies fails the case with that rank's error; rows of
repetitions finished before stay in measurements.csv. The suite goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.measure.clock import utc_now_iso
from harness.prepare.cache import ModelCache
from harness.rows.cases import case_figures
from harness.rows.measurements import RepetitionTotal, measurement_rows, repetition_total
from harness.run.case import CaseContext, case_row, prepare_case, variant_params
from harness.run.ddp.failures import failure_message
from harness.run.ddp.launcher import launch_and_collect, rendezvous_args, torchrun_command
from harness.run.ddp.shipping import ship_batches
from harness.spec.case import Case
from harness.spec.variants import check_trainable
from harness.workloads.batches import make_batch


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


def _case_file(
    ctx: CaseContext, case: Case, params: dict[str, Any], cache: ModelCache, work: Path
) -> dict[str, Any]:
    """What every rank needs to run its share of the case (written as JSON)."""
    s = ctx.suite.settings
    first = ctx.meter.probes[0].options
    return {
        "case": {
            "case_id": case.case_id,
            "model": case.model,
            "dataset": case.dataset,
            "variant": case.variant,
            "batch_size": case.batch_size,
            "device": case.device,
            "model_options": case.factory_options,
        },
        "variant_params": params,
        "settings": {
            "seed": s.seed,
            "train_epochs": s.train_epochs,
            "data_root": s.data_root,
            "warmup_iterations": s.warmup_iterations,
            "repetitions": s.repetitions,
            "precision": case.precision,
        },
        "world_size": s.nproc_per_node * s.nnodes,
        "nproc_per_node": s.nproc_per_node,
        "nnodes": s.nnodes,
        "min_window_s": ctx.min_window_s,
        "probes": [p.name for p in ctx.meter.probes],
        "powercap_root": str(first.powercap_root) if first.powercap_root else None,
        "idle_power_w": dict(ctx.meter.idle_power_w),
        "cache_dir": str(cache.root),
        "results_path": str(work / "results.jsonl"),
        "batches_path": str(work / "batches.pt"),
        "sys_path": [p for p in sys.path if p],
    }


def _launch(
    ctx: CaseContext, case: Case, spec: dict[str, Any], work: Path, master: tuple
) -> list[RepetitionTotal]:
    """Run torchrun on this node; rows are appended as each repetition arrives."""
    s = ctx.suite.settings
    spec_path = work / "case.json"
    spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    cmd = torchrun_command(
        spec_path,
        nproc_per_node=s.nproc_per_node,
        nnodes=s.nnodes,
        master_addr=master[0],
        master_port=master[1],
    )
    backend = "nccl" if case.device.startswith("cuda") else "gloo"
    ctx.log(f"{case.case_id}: torchrun, {s.nnodes} node(s) x {s.nproc_per_node} ranks, {backend}")
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
    if len(totals) != s.repetitions:
        raise EnergyHarnessError(
            f"torchrun ended without reporting every repetition ({len(totals)} of "
            f"{s.repetitions}); its last output: {stderr_text[-800:]}"
        )
    return totals


def run_ddp_case(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """Measure one ddp-training case under torchrun; returns its cases.csv row.

    Raises EnergyHarnessError when a rank fails (the runner records it and goes on),
    VariantUnsupported for a variant that cannot train.
    """
    s = ctx.suite.settings
    world_size = s.nproc_per_node * s.nnodes
    started = utc_now_iso()
    _check_devices(case, s.nproc_per_node)
    master = (os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"))
    rendezvous_args(s.nnodes, s.nproc_per_node, 0, *master)  # fails before any training
    data = ctx.dataset(case)
    work = Path(tempfile.mkdtemp(prefix="energy-harness-ddp-"))
    try:
        cache = ctx.cache if ctx.cache is not None else ModelCache(work / "cache")
        cache.root.mkdir(parents=True, exist_ok=True)
        prepared = prepare_case(ctx, case, data, cache)
        check_trainable(prepared.variant)
        if ctx.peer is not None:
            ctx.log(f"{case.case_id}: the {ctx.peer} peer is not run for ddp-training cases")
        spec = _case_file(ctx, case, variant_params(case, ctx.suite), cache, work)
        ship_batches(data, Path(spec["batches_path"]), s.nproc_per_node * case.batch_size)
        ctx.progress.measuring()
        totals = _launch(ctx, case, spec, work, master)
        inputs, _ = make_batch(
            case.batch_size,
            data=data,
            split="train",
            device=prepared.device,
            input_dtype=prepared.input_dtype,
            seed=s.seed,
        )
        fig = case_figures(totals, case.batch_size * world_size, world_size)
        return case_row(ctx, case, prepared, inputs, fig, started, {"world_size": world_size})
    finally:
        shutil.rmtree(work, ignore_errors=True)
