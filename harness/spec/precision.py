"""Numeric precision of a workload, by name (no torch): what a suite and `estimate` accept.

- `fp32`: float32 everywhere; on CUDA, TF32 is switched off for matrix products and
  convolutions, so fp32 means fp32 (CUDA cores), not PyTorch's default of TF32 convolutions.
- `tf32`: float32 tensors, matrix products and convolutions on TF32 tensor cores (CUDA,
  compute capability >= 8.0).
- `bf16`, `fp16`: autocast: matrix products and convolutions in bfloat16 / float16, the
  weights kept in float32 (mixed precision, as labs train and serve).

Where each one can run is decided in `harness.workloads.precision`; how each is priced in
`harness.estimate` (tensor-core rates for tf32/bf16/fp16 on GPU profiles).
"""

from __future__ import annotations

from harness.errors import EnergyHarnessError

FP32 = "fp32"
TF32 = "tf32"
BF16 = "bf16"
FP16 = "fp16"
PRECISIONS = (FP32, TF32, BF16, FP16)
AUTOCAST = (BF16, FP16)  # precisions run under autocast
DEFAULT_PRECISION = FP32


def check_precision(value: object, where: str) -> str:
    """`value` if it names a precision; else one error naming `where` and the allowed ones."""
    if value not in PRECISIONS:
        raise EnergyHarnessError(
            f"{where}: unknown precision {value!r}; allowed: {', '.join(PRECISIONS)}"
        )
    return str(value)
