"""One rank of a `ddp-training` case, started by `torch.distributed.run` (see harness.distributed).

    python -m torch.distributed.run --nproc-per-node N ... -m harness.ddp_worker --spec SPEC
    python -m torch.distributed.run --nproc-per-node N ... -m harness.ddp_worker --follow

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
   global rank 0 gathers every rank's measurement and appends one JSON line to the
   results file at once (the runner turns it into measurements.csv rows).

A rank that raises writes `errors/rank-R.json` beside the spec (when that folder is on
its node), then re-raises: torchrun records it in its error file and summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from probes.base import Domain, Probe, ProbeOptions, Reading

GPU_SCOPE_PREFIX = "gpu:"


def owns_domain(
    domain: Domain, *, local_rank: int, gpu_index: int | None, gpus_in_use: Collection[int]
) -> bool:
    """Whether the rank with `local_rank` (running on CUDA device `gpu_index`) reads `domain`.

    The rule, so that every counter of a node is read by exactly one process: a GPU that
    a rank of this node runs on (`gpus_in_use`, CUDA numbering) belongs to that rank;
    everything else (RAPL package/dram/psys, the modelled CPU and RAM of the node's
    process tree, GPUs that no rank uses) belongs to local rank 0.
    """
    scope = domain.scope
    if scope.startswith(GPU_SCOPE_PREFIX):
        try:
            index = int(scope[len(GPU_SCOPE_PREFIX) :])
        except ValueError:
            index = -1
        if index in gpus_in_use:
            return gpu_index == index
    return local_rank == 0


class OwnedProbe(Probe):
    """A probe seen through a filter: only the domains this rank owns (same name, source)."""

    def __init__(self, inner: Probe, keep: Iterable[str]) -> None:
        super().__init__(inner.options)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.source = inner.source  # type: ignore[misc]
        self.default = inner.default  # type: ignore[misc]
        self.min_window_s = inner.min_window_s
        self.keep = set(keep)

    def unavailable_reason(self) -> str | None:
        return self.inner.unavailable_reason()

    def domains(self) -> list[Domain]:
        return [d for d in self.inner.domains() if d.name in self.keep]

    def read(self) -> Reading:
        reading = self.inner.read()
        return Reading(
            timestamp_s=reading.timestamp_s,
            energy_j={k: v for k, v in reading.energy_j.items() if k in self.keep},
            invalid_count={k: v for k, v in reading.invalid_count.items() if k in self.keep},
            invalid_reason={k: v for k, v in reading.invalid_reason.items() if k in self.keep},
        )

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    def info(self) -> dict[str, object]:
        return {**self.inner.info(), "domains_read_by_this_rank": sorted(self.keep)}


def owned_probes(
    probes: list[Probe], *, local_rank: int, gpu_index: int | None, gpus_in_use: Collection[int]
) -> list[Probe]:
    """The probes restricted to the domains this rank owns; probes left empty are closed."""
    out: list[Probe] = []
    for probe in probes:
        domains = probe.domains()
        keep = [
            d.name
            for d in domains
            if owns_domain(d, local_rank=local_rank, gpu_index=gpu_index, gpus_in_use=gpus_in_use)
        ]
        if not keep:
            probe.close()
        elif len(keep) == len(domains):
            out.append(probe)
        else:
            out.append(OwnedProbe(probe, keep))
    return out


def _node_probes(names: list[str], options: ProbeOptions, node: int) -> list[Probe]:
    """The runner's probes; on another node, those of them that this node has."""
    from harness.probes_loader import load_probes

    try:
        return load_probes(names, options)
    except EnergyHarnessError as exc:
        if node == 0:
            raise
        defaults = load_probes(None, options)
        available = [p for p in defaults if p.name in names]
        for probe in defaults:
            if probe.name not in names:
                probe.close()
        if not available:
            raise
        print(f"node {node}: reading {[p.name for p in available]} only ({exc})", flush=True)
        return available


def error_text(exc: BaseException) -> str:
    """`Type: message (at file.py:line)`, the last frame of the traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _write_error(errors_dir: Path | None, exc: BaseException) -> None:
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
        tmp.write_text(json.dumps(record))
        os.replace(tmp, errors_dir / f"rank-{rank}.json")
    except OSError:
        pass  # the rank's own exception matters more; torchrun still records it


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


def _rank_batch(data: Any, batch_size: int, offset: int, device: Any, input_dtype: Any) -> tuple:
    """`batch_size` training samples from index `offset` on (wrapping), on `device`."""
    import torch

    dataset = data.train
    n = len(dataset)
    if n == 0:
        raise EnergyHarnessError(f"dataset {data.name!r} has an empty train split")
    samples = [dataset[(offset + i) % n] for i in range(batch_size)]
    inputs = torch.stack([torch.as_tensor(x) for x, _ in samples])
    labels = torch.as_tensor([int(y) for _, y in samples], dtype=torch.long)
    if input_dtype is not None and inputs.is_floating_point():
        inputs = inputs.to(input_dtype)
    return inputs.to(device), labels.to(device)


SHIPPED_SOURCE = "training samples the runner sent to the ranks of its node"


def ship_batches(data: Any, path: Path, samples: int) -> None:
    """Save the first `samples` training samples (wrapping) and what identifies the data.

    The ranks on the runner's node read this instead of loading the dataset: rank r's
    batch is samples `r x batch_size` onwards, exactly as `_rank_batch` takes them from
    the whole split.
    """
    import torch

    n = len(data.train)
    if n == 0:
        raise EnergyHarnessError(f"dataset {data.name!r} has an empty train split")
    items = [data.train[i % n] for i in range(samples)]
    torch.save(
        {
            "inputs": torch.stack([torch.as_tensor(x) for x, _ in items]),
            "labels": torch.as_tensor([int(y) for _, y in items], dtype=torch.long),
            "name": data.name,
            "input_shape": list(data.input_shape),
            "num_classes": int(data.num_classes),
            "input_dtype": str(data.input_dtype).removeprefix("torch."),
            "fingerprint_json": json.dumps(data.fingerprint),
        },
        path,
    )


def _shipped_data(path: Path) -> Any:
    """The DatasetSplits view of `ship_batches`' file (same cache key as the full data)."""
    import torch
    from torch.utils.data import TensorDataset

    from benchmarks.data import DatasetSplits

    saved = torch.load(path, weights_only=True)
    inputs, labels = saved["inputs"], saved["labels"]
    return DatasetSplits(
        name=saved["name"],
        train=TensorDataset(inputs, labels),
        test=TensorDataset(inputs[:0], labels[:0]),
        input_shape=tuple(saved["input_shape"]),
        num_classes=saved["num_classes"],
        source=SHIPPED_SOURCE,
        input_dtype=getattr(torch, saved["input_dtype"]),
        # as prepare_model keys it: the fingerprint, else the name
        fingerprint=json.loads(saved["fingerprint_json"]) or {"name": saved["name"]},
    )


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before going on."""
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def run_rank(spec: dict[str, Any], me: _Rank) -> None:
    """Prepare, calibrate and measure this rank's share of the case described by `spec`."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from benchmarks.data import load_dataset
    from harness.cache import ModelCache
    from harness.compress import prepare_model
    from harness.meter import EnergyMeter, sync_cuda, utc_now_iso
    from harness.training import TrainConfig
    from harness.workloads import calibrate_iterations, run_iterations, training_step

    case, s = spec["case"], spec["settings"]
    if me.world_size != spec["world_size"] or me.local_world_size != spec["nproc_per_node"]:
        raise EnergyHarnessError(
            f"this job has {me.world_size} ranks ({me.local_world_size} on this node) but the "
            f"case needs {spec['nnodes']} nodes x {spec['nproc_per_node']} ranks: start every "
            "node with the same --nnodes and --nproc-per-node"
        )
    for entry in spec.get("sys_path", []):  # where the runner found user model factories
        if entry not in sys.path:
            sys.path.append(entry)
    on_gpu = str(case["device"]).startswith("cuda")
    ddp_group = None
    if on_gpu:
        torch.cuda.set_device(me.local_rank)
        device = torch.device("cuda", me.local_rank)
        ddp_group = me.dist.new_group(backend="nccl")
    else:
        device = torch.device("cpu")
    shipped = Path(spec["batches_path"])
    if me.node == 0 and shipped.is_file():
        data = _shipped_data(shipped)
    else:
        data = load_dataset(
            case["dataset"],
            data_root=s["data_root"],
            download=False,
            model=case["model"],
            seed=s["seed"],
        )
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
    )
    if not prepared.from_cache:
        if data.source == SHIPPED_SOURCE:
            raise EnergyHarnessError(
                f"the runner's prepared model is no longer in the cache {cache_dir}: was the "
                "cache cleared during the run? Run the case again"
            )
        print(f"rank {me.rank}: prepared {case['model']} here (no cache on this node)", flush=True)
    batch_size = int(case["batch_size"])
    inputs, labels = _rank_batch(
        data, batch_size, me.rank * batch_size, device, prepared.input_dtype
    )
    model = DistributedDataParallel(
        prepared.model,
        device_ids=[me.local_rank] if on_gpu else None,
        process_group=ddp_group,
    )
    step = training_step(model, inputs, labels, copy_model=False, variant=case["variant"])

    powercap_root = spec["powercap_root"] if me.node == 0 else None
    options = ProbeOptions(
        powercap_root=Path(powercap_root) if powercap_root else None,
        pid=os.getppid() if me.local_rank == 0 else None,  # the torchrun agent: the node's tree
    )
    probes = owned_probes(
        _node_probes(spec["probes"], options, me.node),
        local_rank=me.local_rank,
        gpu_index=me.local_rank if on_gpu else None,
        gpus_in_use=range(me.local_world_size) if on_gpu else (),
    )
    meter = EnergyMeter(probes) if probes else None
    if meter is not None:
        meter.start()
        if me.node == 0:  # the runner measured idle power on its own node only
            meter.idle_power_w = {k: float(v) for k, v in spec["idle_power_w"].items()}
    min_window_s = float(spec["min_window_s"])
    results_path = Path(spec["results_path"]) if me.rank == 0 else None
    try:
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
            start_utc = utc_now_iso()
            t0 = time.perf_counter()
            samples = run_iterations(step, iterations)
            done = iterations
            sync_cuda()
            elapsed_s = me.agree_max(time.perf_counter() - t0)
            while elapsed_s < min_window_s:  # faster than calibrated: extend, all together
                per_step_s = max(elapsed_s / done, 1e-9)
                more = max(1, math.ceil((min_window_s - elapsed_s) / per_step_s * 1.1))
                samples += run_iterations(step, more)
                done += more
                sync_cuda()
                elapsed_s = me.agree_max(time.perf_counter() - t0)
            me.dist.barrier()
            if meter is not None:
                m = meter.end_window(name)
                duration_s, start_utc = m.duration_s, m.start_utc
                domains = [dataclasses.asdict(d) for d in m.domains]
                warnings = list(m.warnings)
            else:
                duration_s, domains, warnings = time.perf_counter() - t0, [], []
            record = {
                "rank": me.rank,
                "node": me.node,
                "local_rank": me.local_rank,
                "iterations": done,
                "samples": samples,
                "start_utc": start_utc,
                "duration_s": duration_s,
                "domains": domains,
                "warnings": warnings,
            }
            gathered: list[Any] | None = [None] * me.world_size if me.rank == 0 else None
            me.dist.gather_object(record, gathered, dst=0)
            if results_path is not None and gathered is not None:
                _append_line(results_path, {"repetition": rep, "ranks": gathered})
            iterations = done  # a window that ended too soon was extended
    finally:
        if meter is not None:
            meter.close()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.ddp_worker", description=__doc__)
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
            box[0] = json.loads(args.spec.read_text())
        dist.broadcast_object_list(box, src=0)
        run_rank(box[0], me)
        dist.barrier()
        dist.destroy_process_group()
    except BaseException as exc:
        _write_error(errors_dir, exc)
        raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of one rank; exceptions propagate (torchrun records them)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    record(_main)(_parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
