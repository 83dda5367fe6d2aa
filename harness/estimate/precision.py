"""What a precision changes in the counts of a step (see `harness.spec.precision`).

- `fp32`: nothing; FLOPs are priced as fp32 (CUDA cores on a GPU profile).
- `tf32`: the same tensors; the FLOPs of matrix products and convolutions (the only
  operators that count FLOPs) run on TF32 tensor cores: counted as `tf32`.
- `bf16`, `fp16` (autocast): the step is counted with the model and its float inputs cast
  to that dtype, so FLOPs, activations and weight reads are bf16/fp16. Autocast keeps the
  float32 weights and casts them on use: every float32 matrix or convolution weight is
  read (4 bytes) and written as a 16-bit copy (2 bytes) once per step, and in training
  its 16-bit gradient is read (2 bytes) and accumulated into the float32 one (4 bytes);
  both are added, 6 bytes per weight element each. An approximation: autocast also keeps
  a few operators (losses, softmax, norms' parameters) in float32, counted here in 16 bits.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from harness.errors import EnergyHarnessError
from harness.estimate.accounting import WeightInfo
from harness.spec.precision import AUTOCAST, BF16, FP16, FP32, PRECISIONS, TF32

COUNT_DTYPES = {BF16: torch.bfloat16, FP16: torch.float16}
CAST_BYTES_PER_ELEMENT = 4 + 2  # read the float32 value, write (or read) the 16-bit one
PRECISION_NOTES = {
    FP32: "fp32: float32 arithmetic (CUDA cores on a GPU)",
    TF32: "tf32: float32 tensors; matrix products and convolutions on TF32 tensor cores",
    BF16: "bf16: autocast; matrix products and convolutions in bfloat16, float32 weights "
    "cast on use (6 bytes per weight element per step added)",
    FP16: "fp16: autocast; matrix products and convolutions in float16, float32 weights "
    "cast on use (6 bytes per weight element per step added)",
}


def check_count_precision(precision: str) -> None:
    """Raise for a precision the counts do not know."""
    if precision not in PRECISIONS:
        raise EnergyHarnessError(
            f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}"
        )


def count_dtype(precision: str) -> torch.dtype | None:
    """The dtype a step is counted in at `precision`; None: the model's own."""
    return COUNT_DTYPES.get(precision)


def as_count_dtype(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.dtype:
    """The dtype `tensor` is counted in: `dtype` for float32 tensors, else its own."""
    if dtype is not None and tensor.dtype == torch.float32:
        return dtype
    return tensor.dtype


def relabel_flops(flops_by_dtype: dict[str, float], precision: str) -> dict[str, float]:
    """FLOPs per dtype as the precision runs them: fp32 FLOPs become tf32 under `tf32`."""
    if precision != TF32:
        return dict(flops_by_dtype)
    out: dict[str, float] = {}
    for dtype, flops in flops_by_dtype.items():
        key = TF32 if dtype == "fp32" else dtype
        out[key] = out.get(key, 0.0) + flops
    return out


def matrix_weights(model: nn.Module) -> set[str]:
    """Names (as in `effective_weights`) of float32 weights of 2 or more dimensions."""
    return {
        name.removesuffix("_orig")
        for name, p in model.named_parameters()
        if p.dim() >= 2 and p.dtype == torch.float32
    }


def autocast_cast_bytes(
    precision: str,
    mode: str,
    weights: Iterable[WeightInfo],
    matrices: set[str],
    *,
    sparse: bool,
) -> dict[str, float]:
    """Bytes autocast adds per step: weight casts (and gradient accumulation in training).

    Per weight element: 6 bytes in `weights`; in training 6 more in `gradients`.
    Scaled by each weight's density under `sparse-ideal`. Empty unless bf16/fp16.
    """
    if precision not in AUTOCAST:
        return {}
    elements = sum(w.numel * (w.density if sparse else 1.0) for w in weights if w.name in matrices)
    out = {"weights": CAST_BYTES_PER_ELEMENT * elements}
    if mode == "training":
        out["gradients"] = CAST_BYTES_PER_ELEMENT * elements
    return out
