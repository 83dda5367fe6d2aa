"""Counts of one inference or training step of a prepared model: FLOPs, bytes, transfers.

`count_step(model, example_input, mode=...)` runs the model once under a counting
dispatch mode (see `harness.estimate.dispatch` for the traffic model). The model is not
touched: it is copied to the `meta` device (shapes only, no arithmetic, so any batch
size is cheap) or, when it cannot be (packed quantized weights, tensors held outside
parameters and buffers), copied and run for real on its own device.

On top of what the operators do, a training step adds, analytically:
- the optimizer update: reads parameter and gradient, reads and writes its state,
  writes the parameter (SGD: 3 x parameter bytes, SGD with momentum: 5 x, Adam: 7 x);
- data-parallel gradient all-reduce over `world_size` ranks, as a ring:
  2 (N - 1) / N x gradient bytes sent per rank per step;
and every step adds the host-to-device copy of its inputs (and labels, for training)
when the model runs on a device with its own memory (`host_to_device=True`).

All counts are per step (the whole batch) and per rank; divide by the batch size for
per-sample figures. FLOPs are those FlopCounterMode counts: a multiply-add is 2 FLOPs.
At a precision other than fp32 the step is counted as `harness.estimate.precision` says.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from harness.errors import EnergyHarnessError
from harness.estimate.accounting import (
    DENSE_HW,
    SPARSE_IDEAL,
    NonzeroParams,
    WeightInfo,
    effective_weights,
    is_packed_quantized,
)
from harness.estimate.dispatch import (
    WEIGHTS,
    CountingMode,
    QuantizedLinearInfo,
    Tally,
    make_flop_counter,
)
from harness.estimate.names import MODES, OPTIMIZER_TRAFFIC  # noqa: F401 (re-exported)
from harness.estimate.precision import (
    as_count_dtype,
    autocast_cast_bytes,
    check_count_precision,
    count_dtype,
    matrix_weights,
    relabel_flops,
)
from harness.prepare.pruning import make_pruning_permanent
from harness.spec.precision import FP32

OPTIMIZER = "optimizer"
HOST_TO_DEVICE = "host_to_device"
INTERCONNECT = "interconnect"


@dataclass(frozen=True)
class Counts:
    """Operations and bytes of one step under one accounting (whole batch, one rank)."""

    accounting: str
    flops_by_dtype: dict[str, float]
    flops_by_op: dict[str, float]
    memory_bytes: dict[str, float]  # weights, activations, gradients, optimizer
    comm_bytes: dict[str, float]  # host_to_device, interconnect

    @property
    def flops(self) -> float:
        """All counted FLOPs."""
        return float(sum(self.flops_by_dtype.values()))

    @property
    def bytes(self) -> float:
        """All main-memory traffic in bytes."""
        return float(sum(self.memory_bytes.values()))

    @property
    def comm_bytes_total(self) -> float:
        """All bytes moved between devices or hosts."""
        return float(sum(self.comm_bytes.values()))

    def scaled(self, factor: float) -> Counts:
        """Every count multiplied by `factor` (1 / batch size gives per-sample counts)."""

        def mul(d: dict[str, float]) -> dict[str, float]:
            return {k: v * factor for k, v in d.items()}

        return Counts(
            self.accounting,
            mul(self.flops_by_dtype),
            mul(self.flops_by_op),
            mul(self.memory_bytes),
            mul(self.comm_bytes),
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "flops": self.flops,
            "bytes": self.bytes,
            "comm_bytes": self.comm_bytes_total,
            "flops_by_dtype": dict(self.flops_by_dtype),
            "flops_by_op": dict(self.flops_by_op),
            "memory_bytes": dict(self.memory_bytes),
            "comm_bytes_by_channel": dict(self.comm_bytes),
        }


@dataclass(frozen=True)
class StepCounts:
    """Counts of one step of a model, under `dense-hw` and `sparse-ideal`, plus its weights."""

    mode: str
    batch_size: int
    world_size: int
    optimizer: str | None
    host_to_device: bool
    dense_hw: Counts
    sparse_ideal: Counts
    weights: tuple[WeightInfo, ...]
    counted_on: str  # "meta" (shapes only) or the device it really ran on
    notes: tuple[str, ...] = field(default=())
    precision: str = FP32
    input_shape: tuple[int, ...] = ()  # one sample of the first input
    output_shape: tuple[int, ...] = ()  # one sample of the (first) output

    @property
    def nonzero(self) -> NonzeroParams:
        """The `nonzero-params` proxy."""
        return NonzeroParams(sum(w.nonzero for w in self.weights), self.params)

    @property
    def params(self) -> int:
        """Number of parameters (effective weights, biases included)."""
        return sum(w.numel for w in self.weights)

    @property
    def density(self) -> float:
        """Fraction of nonzero parameters."""
        return self.nonzero.density

    def accounting(self, name: str) -> Counts:
        """The counts of `dense-hw` or `sparse-ideal`."""
        if name == DENSE_HW:
            return self.dense_hw
        if name == SPARSE_IDEAL:
            return self.sparse_ideal
        raise EnergyHarnessError(
            f"no operation counts for accounting {name!r}; use {DENSE_HW!r} or {SPARSE_IDEAL!r}"
        )


def _inputs(example_input: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise EnergyHarnessError(
            "count_step needs the example input as a tensor or a tuple of tensors "
            f"(got {type(example_input).__name__})"
        )
    return inputs


def _model_device(model: nn.Module) -> torch.device:
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def _plain_tensor_attributes(model: nn.Module) -> Iterator[torch.Tensor]:
    """Tensors held as plain module attributes (e.g. the pruned `weight` = orig x mask)."""
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                yield value


def _copy(model: nn.Module, meta: bool, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy; with `meta`, its tensors live on the meta device (no memory, no math),
    float32 ones cast to `dtype` if given.

    Plain tensor attributes are detached first: a pruned module's `weight` is a non-leaf
    tensor, which `copy.deepcopy` refuses.
    """
    memo: dict[int, object] = {}
    if meta:
        for t in itertools.chain(model.parameters(), model.buffers()):
            # Shape and dtype only: a sparse tensor subclass (2:4) becomes a dense meta tensor.
            m = torch.empty(t.shape, dtype=as_count_dtype(t, dtype), device="meta")
            memo[id(t)] = nn.Parameter(m, t.requires_grad) if isinstance(t, nn.Parameter) else m
    for t in _plain_tensor_attributes(model):
        if id(t) not in memo:
            memo[id(t)] = (
                torch.empty_like(t, device="meta", dtype=as_count_dtype(t, dtype))
                if meta
                else t.detach().clone()
            )
    return copy.deepcopy(model, memo)


def _needs_real_run(model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        if is_packed_quantized(module):
            return f"{name or 'the model'} holds packed quantized weights"
    return None


@contextmanager
def _countable_kernels() -> Iterator[None]:
    """Attention as plain matrix products and no fused encoder fast path, so FLOPs count."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _loss(output: object, batch_size: int) -> tuple[torch.Tensor, int]:
    """A training loss on the output; returns it and the label bytes it needed."""
    out = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(out, torch.Tensor):
        raise EnergyHarnessError(
            f"cannot count a training step: the model returned {type(out).__name__}, "
            "not a tensor to compute a loss on"
        )
    if out.dim() == 2 and out.is_floating_point() and out.shape[0] == batch_size:
        labels = torch.zeros(batch_size, dtype=torch.long, device=out.device)
        return nn.functional.cross_entropy(out, labels), labels.numel() * labels.element_size()
    return out.float().pow(2).mean(), 0


def _tag_weights(
    mode: CountingMode, model: nn.Module, weights: dict[str, WeightInfo]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Tag parameters and buffers; hook packed quantized Linear layers."""
    for name, param in model.named_parameters():
        info = weights.get(name)
        mode.tag(param, WEIGHTS, info.density if info else 1.0)
    for _, buf in model.named_buffers():
        mode.tag(buf, WEIGHTS, 1.0)
    handles = []
    for name, module in model.named_modules():
        if not is_packed_quantized(module):
            continue
        prefix = f"{name}." if name else ""
        w = weights[prefix + "weight"]
        b = weights.get(prefix + "bias")
        info = QuantizedLinearInfo(
            module.in_features, module.out_features, w.bytes, b.bytes if b else 0, w.density
        )

        def push(_m, _args, info=info):
            mode.quantized_stack.append(info)

        def pop(_m, _args, _out):
            mode.quantized_stack.pop()

        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop))
    return handles


def _shape(output: object) -> tuple[int, ...]:
    """One sample's shape of a model's (first) output; () if it is not a tensor."""
    out = output[0] if isinstance(output, (tuple, list)) and output else output
    return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) and out.dim() else ()


def _run_counted(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    mode_name: str,
    weights: dict[str, WeightInfo],
) -> tuple[CountingMode, int, tuple[int, ...]]:
    """Run one step under the counting modes; returns the mode, the label bytes and the
    output shape of one sample."""
    flop_counter = make_flop_counter()
    counter = CountingMode(flop_counter)
    handles = _tag_weights(counter, model, weights)
    label_bytes = 0
    model.train(mode_name == "training")
    try:  # fork_rng: a real run (dropout, random labels) leaves the caller's RNG as it was
        with torch.random.fork_rng(devices=[]), _countable_kernels(), flop_counter, counter:
            if mode_name == "training":
                output = model(*inputs)
                loss, label_bytes = _loss(output, inputs[0].shape[0])
                loss.backward()
            else:
                with torch.no_grad():
                    output = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return counter, label_bytes, _shape(output)


def _analytic(
    tally: Tally,
    weights: list[WeightInfo],
    trainable: set[str],
    *,
    sparse: bool,
    mode: str,
    optimizer: str,
    world_size: int,
    input_bytes: int,
    host_to_device: bool,
    precision: str,
    matrices: set[str],
) -> tuple[dict[str, float], dict[str, float]]:
    """Memory and communication bytes, the analytic parts added to the operator tally."""
    memory = {k: float(v) for k, v in tally.bytes_by_category.items()}
    for category, nbytes in autocast_cast_bytes(
        precision, mode, weights, matrices, sparse=sparse
    ).items():
        memory[category] = memory.get(category, 0.0) + nbytes
    comm: dict[str, float] = {}
    if host_to_device:
        comm[HOST_TO_DEVICE] = float(input_bytes)
    if mode == "training":
        grad_bytes = sum(
            w.bytes * (w.density if sparse else 1.0) for w in weights if w.name in trainable
        )
        memory[OPTIMIZER] = OPTIMIZER_TRAFFIC[optimizer] * grad_bytes
        if world_size > 1:
            comm[INTERCONNECT] = 2.0 * (world_size - 1) / world_size * grad_bytes
    return memory, comm


def _check_step(mode: str, optimizer: str, world_size: int) -> None:
    if mode not in MODES:
        raise EnergyHarnessError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if optimizer not in OPTIMIZER_TRAFFIC:
        raise EnergyHarnessError(
            f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZER_TRAFFIC)}"
        )
    if world_size < 1:
        raise EnergyHarnessError(f"world size must be at least 1, got {world_size}")


def _count_run(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    mode: str,
    weights: dict[str, WeightInfo],
    dtype: torch.dtype | None = None,
) -> tuple[CountingMode, int, tuple[int, ...], str, list[str]]:
    """Run one step under the counting mode: on the meta device if the model allows it
    (float32 tensors cast to `dtype` if given), else for real on its own device.
    Returns the counter, label bytes, the output shape of a sample, where, notes."""
    reason = _needs_real_run(model)
    if reason is None:
        try:
            work = _copy(model, meta=True, dtype=dtype)
            make_pruning_permanent(work)
            meta_inputs = tuple(
                torch.empty_like(t, device="meta", dtype=as_count_dtype(t, dtype)) for t in inputs
            )
            return (*_run_counted(work, meta_inputs, mode, weights), "meta", [])
        except Exception as exc:  # noqa: BLE001 - any failure: fall back to a real run
            reason = f"it does not run on the meta device ({type(exc).__name__}: {exc})"
    if dtype is not None:
        raise EnergyHarnessError(
            f"cannot count this model at {dtype}: {reason}; estimate it with precision fp32"
        )
    device = _model_device(model)
    work = _copy(model, meta=False)
    make_pruning_permanent(work)
    try:
        real_inputs = tuple(t.to(device) for t in inputs)
        counted = _run_counted(work, real_inputs, mode, weights)
    except EnergyHarnessError:
        raise
    except Exception as exc:
        raise EnergyHarnessError(
            f"cannot count a {mode} step of this model ({type(exc).__name__}: {exc}); "
            "check that the model runs on the example input"
            + ("; quantized variants support inference only" if mode == "training" else "")
        ) from exc
    return (*counted, str(device), [f"counted by running the model on {device}: {reason}"])


def _accounting_counts(
    counter: CountingMode, weight_list: list[WeightInfo], **analytic: object
) -> dict[str, Counts]:
    """`dense-hw` and `sparse-ideal` counts: the tallies plus the analytic parts."""
    results = {}
    for name, tally, sparse in (
        (DENSE_HW, counter.dense, False),
        (SPARSE_IDEAL, counter.sparse, True),
    ):
        memory, comm = _analytic(tally, weight_list, sparse=sparse, **analytic)
        flops = relabel_flops(dict(tally.flops_by_dtype), str(analytic["precision"]))
        results[name] = Counts(name, flops, dict(tally.flops_by_op), memory, comm)
    return results


def count_step(
    model: nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    mode: str = "inference",
    host_to_device: bool = False,
    world_size: int = 1,
    optimizer: str = "sgd-momentum",
    precision: str = FP32,
) -> StepCounts:
    """Count one step (one batch of `example_input`) of `model`; the model is not modified.

    `precision`: fp32, tf32, bf16 or fp16 (see `harness.estimate.precision`). Raises
    EnergyHarnessError for an unknown mode, optimizer or precision, a bad world size, or
    a model that cannot run the step (e.g. training an int8-dynamic model).
    """
    _check_step(mode, optimizer, world_size)
    check_count_precision(precision)
    inputs = _inputs(example_input)
    batch_size = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    weight_list = effective_weights(model)
    trainable = {
        name.removesuffix("_orig") for name, p in model.named_parameters() if p.requires_grad
    }
    counter, label_bytes, output_shape, counted_on, notes = _count_run(
        model, inputs, mode, {w.name: w for w in weight_list}, count_dtype(precision)
    )
    if counter.unhandled_ops:
        notes.append(
            "operators with opaque (packed) arguments counted without FLOPs: "
            + ", ".join(sorted(counter.unhandled_ops))
        )
    results = _accounting_counts(
        counter,
        weight_list,
        trainable=trainable,
        matrices=matrix_weights(model),
        mode=mode,
        optimizer=optimizer,
        world_size=world_size,
        input_bytes=sum(t.numel() * t.element_size() for t in inputs) + label_bytes,
        host_to_device=host_to_device,
        precision=precision,
    )
    return StepCounts(
        mode=mode,
        batch_size=batch_size,
        world_size=world_size,
        optimizer=optimizer if mode == "training" else None,
        host_to_device=host_to_device,
        dense_hw=results[DENSE_HW],
        sparse_ideal=results[SPARSE_IDEAL],
        weights=tuple(weight_list),
        counted_on=counted_on,
        notes=tuple(notes),
        precision=precision,
        input_shape=tuple(inputs[0].shape[1:]),
        output_shape=output_shape,
    )


def count_callable(fn: Callable[[], object]) -> Counts:
    """Counts (dense-hw) of whatever `fn` computes, under the same rules as `count_step`.

    Tensors `fn` uses are not tagged, so all traffic is counted as `activations`. Use
    meta tensors to count without computing.
    """
    flop_counter = make_flop_counter()
    counter = CountingMode(flop_counter)
    with _countable_kernels(), flop_counter, counter:
        fn()
    tally = counter.dense
    return Counts(
        DENSE_HW,
        dict(tally.flops_by_dtype),
        dict(tally.flops_by_op),
        {k: float(v) for k, v in tally.bytes_by_category.items()},
        {},
    )
