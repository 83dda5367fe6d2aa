"""How much of a model is left after compression: parameters, nonzeros and bytes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from harness.prepare.pruning import prunable_weights


@dataclass(frozen=True)
class SparsityReport:
    """How much of a model is left. Counts are parameters; bytes are at storage dtype.

    `sparsity` is over the prunable weights (conv/linear/attention). `dense_bytes` counts
    every parameter value, zero or not; `nonzero_bytes` only the nonzero ones (a sparse
    format adds index bytes on top; quantization scales are not counted).
    `reference_params` is the parameter count of the uncompressed architecture.
    """

    total_params: int
    nonzero_params: int
    prunable_params: int
    prunable_nonzero: int
    dense_bytes: int
    nonzero_bytes: int
    reference_params: int

    @property
    def sparsity(self) -> float:
        """Fraction of prunable weights that are zero."""
        return 1.0 - self.prunable_nonzero / self.prunable_params if self.prunable_params else 0.0

    @property
    def params_removed(self) -> float:
        """Fraction of the uncompressed model's parameters that are gone or zero."""
        return 1.0 - self.nonzero_params / self.reference_params if self.reference_params else 0.0

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict with the derived fractions, for CSV rows."""
        return {
            **dataclasses.asdict(self),
            "sparsity": self.sparsity,
            "params_removed": self.params_removed,
        }


def _effective_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """A module's own parameter tensors as the forward pass sees them."""
    if hasattr(module, "_packed_params") and callable(getattr(module, "weight", None)):
        tensors = [("weight", module.weight())]  # dynamic quantized linear
        bias = module.bias()
        return tensors + ([("bias", bias)] if bias is not None else [])
    out = []
    for name, param in module._parameters.items():
        if param is None:
            continue
        if name.endswith("_orig") and hasattr(module, name[: -len("_orig")]):
            name = name[: -len("_orig")]
            param = getattr(module, name)  # weight_orig * weight_mask
        out.append((name, param))
    return out


def _count(tensor: torch.Tensor) -> tuple[int, int, int]:
    """(values, nonzero values, bytes per value)."""
    values = tensor.int_repr() if tensor.is_quantized else tensor.detach()
    return tensor.numel(), int(torch.count_nonzero(values)), values.element_size()


def sparsity_report(model: nn.Module, reference_params: int | None = None) -> SparsityReport:
    """Count parameters, nonzeros and bytes of `model` (pruning masks applied)."""
    prunable = {(id(m), n) for m, n in prunable_weights(model)}
    total = nonzero = p_total = p_nonzero = dense_b = nonzero_b = 0
    for module in model.modules():
        quantized_linear = hasattr(module, "_packed_params")
        for name, tensor in _effective_tensors(module):
            n, nz, size = _count(tensor)
            total, nonzero = total + n, nonzero + nz
            dense_b, nonzero_b = dense_b + n * size, nonzero_b + nz * size
            if (id(module), name) in prunable or (quantized_linear and name == "weight"):
                p_total, p_nonzero = p_total + n, p_nonzero + nz
    return SparsityReport(
        total, nonzero, p_total, p_nonzero, dense_b, nonzero_b, reference_params or total
    )
