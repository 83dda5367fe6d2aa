"""One rank of a `ddp-training` case, started by `torch.distributed.run` (see harness.run.ddp).

    python -m torch.distributed.run --nproc-per-node N ... -m harness.run.ddp.worker --spec SPEC
    python -m torch.distributed.run --nproc-per-node N ... -m harness.run.ddp.worker --follow

On the runner's node the ranks get `--spec`, a JSON file the runner wrote (case, settings,
probes, where to report); global rank 0 reads it and broadcasts it, so ranks on other
nodes start with `--follow` and need nothing but the rendezvous. Every rank:

1. joins the process group (gloo for control: broadcasts, barriers, the agreed clock,
   gather; DDP's gradient all-reduce runs on gloo for CPU cases, on NCCL for GPU cases);
2. prepares the model (the runner has cached it: a cache hit; a node without the cache
   prepares it with the same seed, and DDP broadcasts rank 0's weights anyway), wraps
   it in DistributedDataParallel and builds a training step on its own batch (samples
   `rank x batch_size` onwards of the training split);
3. opens the probes it owns (`owned_probes`: a GPU counter is read by the rank that runs
   on that GPU, every whole-node counter by local rank 0 only);
4. calibrates on a clock that all ranks agree on (the max of their elapsed times), so
   every rank runs exactly the same number of steps and no collective is left waiting;
5. per repetition: barrier, begin window, N DDP training steps, barrier, end window;
   global rank 0 gathers every rank's window and appends one JSON line to the results
   file at once (the runner turns it into measurements.csv rows).

A rank that raises writes `errors/rank-R.json` beside the spec (when that folder is on
its node), then re-raises: torchrun records it in its error file and summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.measure.clock import sync_cuda, utc_now_iso
from harness.measure.meter import EnergyMeter
from harness.prepare.cache import ModelCache
from harness.prepare.pipeline import PreparedModel, prepare_model
from harness.rows.measurements import window_record
from harness.run.ddp.failures import write_rank_error
from harness.run.ddp.ownership import node_probes, owned_probes
from harness.run.ddp.shipping import SHIPPED_SOURCE, rank_batch, shipped_data
from harness.spec.catalog import DatasetSplits, load_dataset
from harness.spec.train_config import TrainConfig
from harness.workloads.steps import Step, training_step
from harness.workloads.windows import calibrate_iterations, run_for
from probes.base import ProbeOptions


class _Rank:
    """This process's place in the job and the collectives it uses (all on gloo)."""

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.local_world_size = int(os.environ["LOCAL_WORLD_SIZE"])
        self.node = int(os.environ.get("GROUP_RANK", self.rank // self.local_world_size))
        self._epoch = time.perf_counter()

    def agree_max(self, value: float) -> float:
        """The largest `value` over all ranks (a collective: every rank must call it)."""
        tensor = self.torch.tensor([float(value)], dtype=self.torch.float64)
        self.dist.all_reduce(tensor, op=self.dist.ReduceOp.MAX)
        return float(tensor.item())

    def reset_clock(self) -> None:
        self.dist.barrier()
        self._epoch = time.perf_counter()

    def clock(self) -> float:
        """Seconds since the last `reset_clock`, the same on every rank (the slowest's)."""
        return self.agree_max(time.perf_counter() - self._epoch)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before going on."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _check_job(spec: dict[str, Any], me: _Rank) -> None:
    if me.world_size != spec["world_size"] or me.local_world_size != spec["nproc_per_node"]:
        raise EnergyHarnessError(
            f"this job has {me.world_size} ranks ({me.local_world_size} on this node) but the "
            f"case needs {spec['nnodes']} nodes x {spec['nproc_per_node']} ranks: start every "
            "node with the same --nnodes and --nproc-per-node"
        )
    for entry in spec.get("sys_path", []):  # where the runner found user model factories
        if entry not in sys.path:
            sys.path.append(entry)


def _rank_data(spec: dict[str, Any], me: _Rank) -> DatasetSplits:
    """The runner's shipped samples on its node; elsewhere the dataset itself."""
    case, s = spec["case"], spec["settings"]
    shipped = Path(spec["batches_path"])
    if me.node == 0 and shipped.is_file():
        return shipped_data(shipped)
    return load_dataset(
        case["dataset"],
        data_root=s["data_root"],
        download=False,
        model=case["model"],
        seed=s["seed"],
    )


def _rank_model(spec: dict[str, Any], me: _Rank, data: DatasetSplits, device: Any) -> PreparedModel:
    """The case's model from the runner's cache (or prepared here on another node)."""
    case, s = spec["case"], spec["settings"]
    cache_dir = Path(spec["cache_dir"])
    prepared = prepare_model(
        case["model"],
        data,
        case["variant"],
        spec["variant_params"],
        seed=s["seed"],
        train_config=TrainConfig(epochs=s["train_epochs"]),
        device=device,
        cache=ModelCache(cache_dir if cache_dir.is_dir() else None),
        model_options=case.get("model_options"),
    )
    if not prepared.from_cache:
        if data.source == SHIPPED_SOURCE:
            raise EnergyHarnessError(
                f"the runner's prepared model is no longer in the cache {cache_dir}: was the "
                "cache cleared during the run? Run the case again"
            )
        print(f"rank {me.rank}: prepared {case['model']} here (no cache on this node)", flush=True)
    return prepared


def _rank_step(spec: dict[str, Any], me: _Rank, on_gpu: bool) -> Step:
    """A DDP training step on this rank's batch, on its device."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    ddp_group = None
    if on_gpu:
        torch.cuda.set_device(me.local_rank)
        device = torch.device("cuda", me.local_rank)
        ddp_group = me.dist.new_group(backend="nccl")
    else:
        device = torch.device("cpu")
    case = spec["case"]
    data = _rank_data(spec, me)
    prepared = _rank_model(spec, me, data, device)
    inputs, labels = rank_batch(
        data, int(case["batch_size"]), me.rank, device, prepared.input_dtype
    )
    model = DistributedDataParallel(
        prepared.model,
        device_ids=[me.local_rank] if on_gpu else None,
        process_group=ddp_group,
    )
    precision = spec["settings"]["precision"]
    return training_step(
        model, inputs, labels, copy_model=False, variant=case["variant"], precision=precision
    )


def _rank_meter(spec: dict[str, Any], me: _Rank, on_gpu: bool) -> EnergyMeter | None:
    """A meter over the domains this rank owns (None when it owns none)."""
    powercap_root = spec["powercap_root"] if me.node == 0 else None
    options = ProbeOptions(
        powercap_root=Path(powercap_root) if powercap_root else None,
        pid=os.getppid() if me.local_rank == 0 else None,  # the torchrun agent: the node's tree
    )
    probes = owned_probes(
        node_probes(spec["probes"], options, me.node),
        local_rank=me.local_rank,
        gpu_index=me.local_rank if on_gpu else None,
        gpus_in_use=range(me.local_world_size) if on_gpu else (),
    )
    if not probes:
        return None
    meter = EnergyMeter(probes, tree_pid=os.getppid())  # other_cpu_pct: the whole job's tree
    meter.start()
    if me.node == 0:  # the runner measured idle power on its own node only
        meter.idle_power_w = {k: float(v) for k, v in spec["idle_power_w"].items()}
    return meter


def _measure(spec: dict[str, Any], me: _Rank, step: Step, meter: EnergyMeter | None) -> None:
    """Calibrate on the agreed clock, then every repetition's window; rank 0 reports."""
    case, s = spec["case"], spec["settings"]
    min_window_s = float(spec["min_window_s"])
    results_path = Path(spec["results_path"]) if me.rank == 0 else None
    me.reset_clock()
    iterations = calibrate_iterations(
        step, min_window_s, warmup_iterations=s["warmup_iterations"], clock=me.clock
    )
    iterations = int(me.agree_max(iterations))
    for rep in range(s["repetitions"]):
        name = f"{case['case_id']}#{rep}@rank{me.rank}"
        me.dist.barrier()
        if meter is not None:
            meter.begin_window(name)
        start_utc, t0 = utc_now_iso(), time.perf_counter()
        done, samples = run_for(
            step,
            iterations,
            min_window_s,
            sync=sync_cuda,
            elapsed_s=lambda t0=t0: me.agree_max(time.perf_counter() - t0),
        )
        me.dist.barrier()
        if meter is not None:
            record = window_record(
                meter.end_window(name), done, samples, node=me.node, rank=me.rank
            )
        else:
            record = {
                "rank": me.rank,
                "node": me.node,
                "iterations": done,
                "samples": samples,
                "start_utc": start_utc,
                "duration_s": time.perf_counter() - t0,
                "domains": [],
                "warnings": [],
            }
        record["local_rank"] = me.local_rank
        gathered: list[Any] | None = [None] * me.world_size if me.rank == 0 else None
        me.dist.gather_object(record, gathered, dst=0)
        if results_path is not None and gathered is not None:
            _append_line(results_path, {"repetition": rep, "ranks": gathered})
        iterations = done  # a window that ended too soon was extended


def run_rank(spec: dict[str, Any], me: _Rank) -> None:
    """Prepare, calibrate and measure this rank's share of the case described by `spec`."""
    _check_job(spec, me)
    on_gpu = str(spec["case"]["device"]).startswith("cuda")
    step = _rank_step(spec, me, on_gpu)
    meter = _rank_meter(spec, me, on_gpu)
    try:
        _measure(spec, me, step, meter)
    finally:
        if meter is not None:
            meter.close()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.run.ddp.worker", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--spec", type=Path, help="the case file the runner wrote (its node)")
    group.add_argument("--follow", action="store_true", help="other nodes: get it from rank 0")
    return parser.parse_args(argv)


def _main(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    errors_dir = args.spec.parent / "errors" if args.spec is not None else None
    try:
        dist.init_process_group("gloo")
        me = _Rank()
        box: list[Any] = [None]
        if me.rank == 0:
            if args.spec is None:
                raise EnergyHarnessError(
                    "global rank 0 started with --follow: the runner's node must be node "
                    "rank 0 (start the other nodes with --node-rank 1, 2, ...)"
                )
            box[0] = json.loads(args.spec.read_text(encoding="utf-8"))
        dist.broadcast_object_list(box, src=0)
        run_rank(box[0], me)
        dist.barrier()
        dist.destroy_process_group()
    except BaseException as exc:
        write_rank_error(errors_dir, exc)
        raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of one rank; exceptions propagate (torchrun records them)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    record(_main)(_parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
