"""Run a step at a precision: autocast for bf16/fp16, the TF32 switches for tf32 and fp32.

`precision_support(precision, device)` says whether a device can run a precision (None)
or why not; `check_precision_supported` raises `PrecisionUnsupported` with that reason,
so the runner skips the case (before any training) instead of failing it. A step runs
in `math_mode` (the whole step, backward included) and `autocast` (the forward pass and
the loss); `precision_context` is both, for a forward-only step:

- CUDA: fp32 switches TF32 off for matrix products and convolutions (PyTorch's default
  runs fp32 convolutions on TF32 tensor cores), tf32 switches it on, bf16/fp16 run
  under `torch.autocast`; the switches are restored when the step ends.
- CPU: fp32 as is; bf16 under CPU autocast where torch has bfloat16 CPU kernels
  (oneDNN); tf32 (a GPU tensor-core format) and fp16 are not supported.

Variants with a number format of their own (int8-dynamic, semi-structured-2:4 in fp16)
run only with precision fp32, which leaves their format as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from harness.errors import EnergyHarnessError
from harness.spec.precision import AUTOCAST, BF16, FP16, FP32, TF32
from harness.spec.variants import INT8_DYNAMIC, SEMI_STRUCTURED

AUTOCAST_DTYPES = {BF16: torch.bfloat16, FP16: torch.float16}
OWN_FORMAT = {
    INT8_DYNAMIC: "int8 linear layers, float32 elsewhere",
    SEMI_STRUCTURED: "2:4 sparse weights in float16",
}


class PrecisionUnsupported(EnergyHarnessError):
    """This device (or variant) cannot run this precision: the case is skipped, not failed."""


def _cuda_support(precision: str, device: torch.device) -> str | None:
    if not torch.cuda.is_available():
        return None  # the device check reports a missing GPU
    major, minor = torch.cuda.get_device_capability(device)
    if precision == TF32 and major < 8:
        return f"TF32 needs tensor cores of compute capability >= 8.0; this GPU has {major}.{minor}"
    if precision == BF16 and not torch.cuda.is_bf16_supported():
        return f"this GPU (compute capability {major}.{minor}) has no bfloat16 support"
    return None


def precision_support(precision: str, device: str | torch.device) -> str | None:
    """None if `device` can run `precision`, else the reason it cannot."""
    device = torch.device(device)
    if precision == FP32:
        return None
    if device.type == "cuda":
        return _cuda_support(precision, device)
    if precision == TF32:
        return "TF32 is a tensor-core format of NVIDIA GPUs; on a CPU use fp32 or bf16"
    if precision == FP16:
        return "float16 autocast is measured on CUDA only; on a CPU use fp32 or bf16"
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "this CPU has no bfloat16 kernels in torch (oneDNN needs AVX-512 or newer)"
    if device.type != "cpu":
        return f"no {precision} support is known for device type {device.type!r}"
    return None


def check_variant_precision(precision: str, variant: str) -> None:
    """Raise PrecisionUnsupported for a variant with its own number format at a precision
    other than fp32."""
    if precision != FP32 and variant in OWN_FORMAT:
        raise PrecisionUnsupported(
            f"precision {precision!r} skipped: variant {variant!r} runs in its own number "
            f"format ({OWN_FORMAT[variant]}); use precision fp32 for it"
        )


def check_precision_supported(precision: str, device: str | torch.device, variant: str) -> None:
    """Raise PrecisionUnsupported if the case cannot run at `precision` here."""
    check_variant_precision(precision, variant)
    reason = precision_support(precision, device)
    if reason:
        raise PrecisionUnsupported(f"precision {precision!r} skipped on {device}: {reason}")


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 for cuBLAS matrix products and cuDNN convolutions on or off, then restored."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    value = "tf32" if enabled else "ieee"
    matmul.fp32_precision, conv.fp32_precision = value, value
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


def math_mode(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """The TF32 switches (CUDA): on for tf32, off otherwise; nothing on a CPU.

    Wraps the whole step, backward pass included."""
    return _tf32(precision == TF32) if device.type == "cuda" else nullcontext()


def autocast(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """`torch.autocast` to bf16/fp16 (forward pass and loss only); nothing for fp32/tf32."""
    if precision in AUTOCAST:
        return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
    return nullcontext()


@contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """Both: the context a forward-only step runs in at `precision` on `device`."""
    with math_mode(precision, device), autocast(precision, device):
        yield
