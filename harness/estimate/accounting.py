"""The weights a model really holds, and the three accountings of a compressed model.

- `dense-hw`: zeros are computed and moved like any other value, as on dense hardware
  (GPU tensor cores, CPU SIMD without sparse kernels). What a pruned model costs today.
- `sparse-ideal`: only nonzeros count: every operation and every byte that touches a
  weight is scaled by that weight's density (fraction of nonzero values); activations
  are not. A lower bound no real sparse kernel reaches (index overhead is ignored).
- `nonzero-params`: the proxy of the classic Green-AI pruning example, which takes the
  number of nonzero parameters as "the energy". Reported as it is (a count, not joules)
  so that users can see how well it tracks measured joules.

Effective weights: a `torch.nn.utils.prune` reparametrisation (`weight_orig` x
`weight_mask`) counts as the product; an int8 dynamic-quantized Linear counts its packed
int8 weight (zero = the quantisation zero point) and its float bias.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from harness.estimate.names import ACCOUNTINGS, DENSE_HW, NONZERO_PARAMS, SPARSE_IDEAL  # noqa: F401 (re-exported)

ACCOUNTING_NOTES = {
    DENSE_HW: "zeros are computed and moved as on dense hardware",
    SPARSE_IDEAL: "only nonzero weights are computed and moved (ideal sparse hardware)",
    NONZERO_PARAMS: "count of nonzero parameters (the classic proxy; a count, not joules)",
}

DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float64: "fp64",
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.int8: "int8",
    torch.uint8: "int8",
    torch.qint8: "int8",
    torch.quint8: "int8",
    torch.int32: "int32",
    torch.qint32: "int32",
    torch.int64: "int64",
    torch.bool: "bool",
}


def dtype_name(dtype: torch.dtype) -> str:
    """Short name of a dtype for profiles and reports (`fp32`, `bf16`, `int8`, ...)."""
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


@dataclass(frozen=True)
class WeightInfo:
    """One effective weight tensor: its size, its nonzeros, its storage width."""

    name: str  # qualified name as the model's forward sees it (`fc1.weight`)
    numel: int
    nonzero: int
    bytes_per_element: int
    dtype: str
    kind: str  # "parameter", "pruned" (orig x mask) or "quantized" (packed weights)

    @property
    def density(self) -> float:
        """Fraction of nonzero values (1.0 for an empty tensor)."""
        return self.nonzero / self.numel if self.numel else 1.0

    @property
    def bytes(self) -> int:
        """Storage in bytes when held densely."""
        return self.numel * self.bytes_per_element


def _quantized_nonzero(weight: torch.Tensor) -> int:
    """Nonzeros of a quantized tensor: stored integers that differ from the zero point."""
    ints = weight.int_repr()
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        shape = [1] * ints.dim()
        shape[weight.q_per_channel_axis()] = -1
        zero = weight.q_per_channel_zero_points().reshape(shape)
    else:
        zero = torch.tensor(weight.q_zero_point())
    return int((ints != zero).sum())


def is_packed_quantized(module: nn.Module) -> bool:
    """True for torch.ao quantized Linear modules (dynamic or static) with packed weights."""
    from torch.ao.nn.quantized.modules.linear import Linear as QuantizedLinear

    return isinstance(module, QuantizedLinear)


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """A dense view of a weight; tensor subclasses (2:4 sparse) are densified."""
    tensor = tensor.detach()
    if type(tensor) not in (torch.Tensor, nn.Parameter) and hasattr(tensor, "to_dense"):
        tensor = tensor.to_dense()
    return tensor


def _info(name: str, tensor: torch.Tensor, kind: str) -> WeightInfo:
    tensor = _plain(tensor)
    if tensor.is_quantized:
        nonzero = _quantized_nonzero(tensor)
    elif tensor.device.type == "meta":
        nonzero = tensor.numel()  # values unknown: counted as dense
    else:
        nonzero = int(torch.count_nonzero(tensor))
    return WeightInfo(
        name, tensor.numel(), nonzero, tensor.element_size(), dtype_name(tensor.dtype), kind
    )


def _module_weights(prefix: str, module: nn.Module) -> Iterator[WeightInfo]:
    if is_packed_quantized(module):
        yield _info(prefix + "weight", module.weight(), "quantized")
        bias = module.bias()
        if bias is not None:
            yield _info(prefix + "bias", bias, "parameter")
        return
    params = dict(module.named_parameters(recurse=False))
    buffers = dict(module.named_buffers(recurse=False))
    for pname, param in params.items():
        base = pname.removesuffix("_orig")
        if pname.endswith("_orig") and base + "_mask" in buffers:
            yield _info(prefix + base, param.detach() * buffers[base + "_mask"], "pruned")
        else:
            yield _info(prefix + pname, param, "parameter")


def effective_weights(model: nn.Module) -> list[WeightInfo]:
    """Every weight the model computes with, as it computes with it (see module docstring)."""
    out: list[WeightInfo] = []
    seen: set[str] = set()
    for mod_name, module in model.named_modules(remove_duplicate=True):
        prefix = f"{mod_name}." if mod_name else ""
        for info in _module_weights(prefix, module):
            if info.name not in seen:
                seen.add(info.name)
                out.append(info)
    return out


@dataclass(frozen=True)
class NonzeroParams:
    """The `nonzero-params` proxy: a count of parameters, not an energy."""

    nonzero_params: int
    params: int

    @property
    def density(self) -> float:
        """Nonzero fraction of all parameters."""
        return self.nonzero_params / self.params if self.params else 1.0

    def to_dict(self) -> dict[str, float | int | str]:
        """JSON-ready, with the caveat spelled out."""
        return {
            "nonzero_params": self.nonzero_params,
            "params": self.params,
            "density": self.density,
            "note": ACCOUNTING_NOTES[NONZERO_PARAMS],
        }


def nonzero_params(model: nn.Module) -> NonzeroParams:
    """Nonzero and total parameter counts over the effective weights (biases included)."""
    weights = effective_weights(model)
    return NonzeroParams(sum(w.nonzero for w in weights), sum(w.numel for w in weights))
