"""A dispatch mode that tallies FLOPs and memory traffic of every ATen operator.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (matrix products,
convolutions, attention; elementwise operators count no FLOPs there, and none here),
attributed per operator type and per dtype. Dynamic-quantized Linear layers, which
FlopCounterMode does not know, are counted here as int8 multiply-adds.

Memory traffic follows a simple, stated model: every operator reads each of its input
tensors once and writes each output once, to and from main memory (no fusion, no cache
reuse between operators); views and aliases move nothing; an embedding lookup reads only
the rows it returns. Bytes are sorted into `weights` (parameters, buffers and what is
derived from them alone), `gradients` (weight gradients written in the backward pass)
and `activations` (everything else, activation gradients included).

Two tallies run side by side: `dense-hw` and `sparse-ideal`. In the latter, the FLOPs of
an operator that computes with a weight, and every byte of that weight or its gradient,
are scaled by the weight's density. In the backward pass the weight an operator works
for is found from the autograd node being executed (`torch._C._current_autograd_node`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count
from torch.utils.weak import WeakTensorKeyDictionary

from harness.estimate.accounting import dtype_name

WEIGHTS = "weights"
ACTIVATIONS = "activations"
GRADIENTS = "gradients"

# Operators that alias their input without `is_view` in their schema, or move nothing.
_ALIAS_OPS = {
    "aten.detach",
    "aten.alias",
    "aten._unsafe_view",
    "aten.lift_fresh",
    "aten._reshape_alias",
    "prim.device",
}
_WRITE_ONLY_FIRST_ARG = {"aten.copy_", "aten.fill_", "aten.zero_", "aten.normal_", "aten.uniform_"}
_NO_TRAFFIC_OPS = {"aten.empty", "aten.empty_like", "aten.empty_strided", "aten.new_empty"}
# Backward nodes that only reshape or cast: a weight is found through them.
_PASS_THROUGH_NODES = {
    "TBackward0",
    "ViewBackward0",
    "PermuteBackward0",
    "ExpandBackward0",
    "UnsafeViewBackward0",
    "TransposeBackward0",
    "ReshapeAliasBackward0",
    "AliasBackward0",
    "ToCopyBackward0",
    "SliceBackward0",
    "SelectBackward0",
    "SplitBackward0",
    "UnbindBackward0",
    "AsStridedBackward0",
    "UnsqueezeBackward0",
    "SqueezeBackward0",
}
_QUANTIZED_LINEAR = {"quantized.linear_dynamic": "int8", "quantized.linear_dynamic_fp16": "fp16"}


def _conv_backward_flop(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    """Backward of a convolution: one forward's FLOPs per gradient computed.

    Replaces torch's formula, which ignores `groups` and counts a depthwise convolution's
    backward about `groups` times too high (32x for MobileNetV2's first block).
    """
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def make_flop_counter() -> FlopCounterMode:
    """A FlopCounterMode with the corrections this project relies on."""
    return FlopCounterMode(
        display=False,
        custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop},
    )


@dataclass
class Tally:
    """Running totals of one accounting (one step, whole batch)."""

    flops_by_dtype: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    flops_by_op: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    bytes_by_category: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add_flops(self, op: str, dtype: str, flops: float) -> None:
        self.flops_by_op[op] += flops
        self.flops_by_dtype[dtype] += flops

    def add_bytes(self, category: str, nbytes: float) -> None:
        self.bytes_by_category[category] += nbytes


@dataclass(frozen=True)
class Tag:
    """What a tensor is, for the accounting: its category and the density that scales it."""

    category: str
    density: float


@dataclass(frozen=True)
class QuantizedLinearInfo:
    """What the mode needs about a packed quantized Linear (its weights are opaque)."""

    in_features: int
    out_features: int
    weight_bytes: int
    bias_bytes: int
    density: float


def _tensors(tree: object) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(tree)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def _nbytes(t: torch.Tensor) -> int:
    try:
        return t.numel() * t.element_size()
    except (RuntimeError, NotImplementedError):  # exotic tensor subclasses
        return 0


def _same_shape(a: torch.Size, b: torch.Size) -> bool:
    sa = tuple(s for s in a if s != 1)
    sb = tuple(s for s in b if s != 1)
    return sa == sb or sa == tuple(reversed(sb))


class CountingMode(TorchDispatchMode):
    """Tallies FLOPs and bytes per accounting; use inside an entered FlopCounterMode."""

    def __init__(self, flop_counter: FlopCounterMode) -> None:
        super().__init__()
        self.flop_counter = flop_counter
        self.dense = Tally()
        self.sparse = Tally()
        self.tags = WeakTensorKeyDictionary()
        self.quantized_stack: list[QuantizedLinearInfo] = []
        self.unhandled_ops: set[str] = set()

    # -- tagging -------------------------------------------------------------------------
    def tag(self, tensor: torch.Tensor, category: str, density: float) -> None:
        """Mark a tensor (a weight before the run; a gradient during it)."""
        self.tags[tensor] = Tag(category, density)

    def _tag_of(self, t: torch.Tensor) -> Tag | None:
        return self.tags.get(t)

    def _largest_weight(self, tensors: list[torch.Tensor]) -> Tag | None:
        best: tuple[int, Tag] | None = None
        for t in tensors:
            tag = self._tag_of(t)
            if tag is not None and tag.category == WEIGHTS:
                if best is None or t.numel() > best[0]:
                    best = (t.numel(), tag)
        return best[1] if best else None

    def _linked_params(self, node: object, depth: int = 0) -> list[torch.Tensor]:
        """Parameters whose gradient the autograd node computes (through view nodes)."""
        found: list[torch.Tensor] = []
        for fn, _ in getattr(node, "next_functions", ()):
            if fn is None:
                continue
            name = type(fn).__name__
            if name == "AccumulateGrad":
                found.append(fn.variable)
            elif name in _PASS_THROUGH_NODES and depth < 4:
                found.extend(self._linked_params(fn, depth + 1))
        return found

    # -- counting ------------------------------------------------------------------------
    def _flop_total(self) -> float:
        return float(sum(self.flop_counter.flop_counts["Global"].values()))

    def _read(self, t: torch.Tensor, nbytes: float | None = None) -> None:
        tag = self._tag_of(t)
        n = _nbytes(t) if nbytes is None else nbytes
        category, density = (tag.category, tag.density) if tag else (ACTIVATIONS, 1.0)
        self.dense.add_bytes(category, n)
        self.sparse.add_bytes(category, n * density)

    def _write(self, t: torch.Tensor) -> None:
        self._read(t)  # same rule for writes: category and density from the tag

    def _count_quantized_linear(
        self, op: str, ins: list[torch.Tensor], outs: list[torch.Tensor]
    ) -> None:
        if not self.quantized_stack or not ins:
            self.unhandled_ops.add(op)
            return
        info = self.quantized_stack[-1]
        rows = ins[0].numel() // max(info.in_features, 1)
        flops = 2.0 * rows * info.in_features * info.out_features
        dtype = _QUANTIZED_LINEAR[op]
        self.dense.add_flops(op, dtype, flops)
        self.sparse.add_flops(op, dtype, flops * info.density)
        for tally, density in ((self.dense, 1.0), (self.sparse, info.density)):
            tally.add_bytes(WEIGHTS, info.weight_bytes * density + info.bias_bytes)
        self._read(ins[0])
        for t in outs:
            self._write(t)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        before = self._flop_total()
        out = func(*args, **kwargs)
        flops = self._flop_total() - before
        op = str(func.overloadpacket)
        ins, outs = _tensors((args, kwargs)), _tensors(out)
        if func.is_view or op in _ALIAS_OPS:
            tag = self._tag_of(ins[0]) if ins else None
            if tag is not None:
                for t in outs:
                    self.tags.setdefault(t, tag)
            return out
        if op in _QUANTIZED_LINEAR:
            self._count_quantized_linear(op, ins, outs)
            return out
        leaves, _ = tree_flatten((args, kwargs))
        if any(isinstance(x, torch.ScriptObject) for x in leaves):
            self.unhandled_ops.add(op)
        node = torch._C._current_autograd_node()
        linked = self._linked_params(node) if node is not None else []
        owner = self._largest_weight(linked) or self._largest_weight(ins)
        density = owner.density if owner else 1.0
        if flops:
            dtype = next(
                (dtype_name(t.dtype) for t in ins if t.is_floating_point() or t.is_quantized),
                dtype_name(ins[0].dtype) if ins else "fp32",
            )
            self.dense.add_flops(op, dtype, flops)
            self.sparse.add_flops(op, dtype, flops * density)
        if op in _NO_TRAFFIC_OPS:
            return out
        # A destination that is only written (copy_, fill_, out=) is not read.
        seen: set[int] = {id(t) for t in _tensors(kwargs.get("out"))}
        if op in _WRITE_ONLY_FIRST_ARG and ins:
            seen.add(id(ins[0]))
        for i, t in enumerate(ins):
            if id(t) in seen:
                continue
            seen.add(id(t))
            # An embedding lookup reads only the rows it returns.
            rows = sum(_nbytes(o) for o in outs) if op == "aten.embedding" and i == 0 else None
            self._read(t, rows)
        self._tag_outputs(ins, outs, linked, node is not None)
        for t in outs:
            self._write(t)
        return out

    def _tag_outputs(
        self,
        ins: list[torch.Tensor],
        outs: list[torch.Tensor],
        linked: list[torch.Tensor],
        backward: bool,
    ) -> None:
        """Weight gradients (backward) and tensors derived only from weights (forward)."""
        if backward:
            for t in outs:
                if t in self.tags:
                    continue
                for p in linked:
                    if t.numel() == p.numel() and _same_shape(t.shape, p.shape):
                        tag = self._tag_of(p)
                        self.tag(t, GRADIENTS, tag.density if tag else 1.0)
                        break
            return
        ins_tags = [self._tag_of(t) for t in ins]
        if ins and all(tag is not None and tag.category == WEIGHTS for tag in ins_tags):
            owner = self._largest_weight(ins)
            for t in outs:
                if t not in self.tags and owner is not None:
                    self.tag(t, WEIGHTS, owner.density)
