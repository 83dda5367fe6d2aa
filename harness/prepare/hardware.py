"""Where variants and devices can run: CUDA present, 2:4 sparse kernels, int8 kernels.

A case whose device or variant cannot run here is skipped with the reason before any
training (`DeviceUnavailable`, `VariantUnsupported`), never failed.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from harness.errors import EnergyHarnessError
from harness.spec.variants import INT8_DYNAMIC, SEMI_STRUCTURED, VariantUnsupported


class DeviceUnavailable(EnergyHarnessError):
    """The case's device is not on this machine: the case is skipped, not failed."""


def check_device(device: str) -> None:
    """Raise DeviceUnavailable if `device` (cpu, cuda, cuda:N) cannot run here."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"device {device!r}: torch sees no CUDA GPU here (no driver, a CPU-only torch, or "
            "CUDA_VISIBLE_DEVICES hides them); run the suite on a GPU machine or set "
            'devices = ["cpu"]'
        )
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        raise DeviceUnavailable(
            f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
        )


def semi_structured_support(device: torch.device) -> str | None:
    """None if 2:4 sparse kernels can run on `device`, else the reason they cannot."""
    if device.type != "cuda":
        return (
            f"2:4 sparse kernels need a CUDA GPU with compute capability >= 8.0; this case "
            f"runs on {device.type}, where PyTorch has no semi-structured sparse kernels"
        )
    if not torch.cuda.is_available():
        return "CUDA is not available to PyTorch on this machine"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"GPU compute capability {major}.{minor} < 8.0 has no sparse tensor cores"
    try:
        from torch.sparse import to_sparse_semi_structured  # noqa: F401
    except ImportError as exc:
        return f"this PyTorch has no to_sparse_semi_structured ({exc})"
    return None


def _semi_structured_class() -> Any:
    from torch.sparse import SparseSemiStructuredTensor as Base

    if Base._FORCE_CUTLASS or not torch.backends.cusparselt.is_available():
        return torch.sparse.SparseSemiStructuredTensorCUTLASS
    return torch.sparse.SparseSemiStructuredTensorCUSPARSELT


def semi_structured_layers(model: nn.Module, dtype: torch.dtype = torch.float16) -> list[str]:
    """Names of plain `nn.Linear` layers whose weight shape the 2:4 kernels accept.

    Subclasses (attention's `out_proj`) are left dense: their owners read the weight
    directly instead of calling the layer.
    """
    from torch.sparse import SparseSemiStructuredTensorCUTLASS as Cutlass

    limits = Cutlass._DTYPE_SHAPE_CONSTRAINTS[dtype]
    return [
        name
        for name, m in model.named_modules()
        if type(m) is nn.Linear
        and m.out_features % limits.sparse_min_rows == 0
        and m.in_features % limits.sparse_min_cols == 0
    ]


def to_semi_structured(model: nn.Module, layers: list[str], device: torch.device) -> nn.Module:
    """Half precision on `device`, the named layers' weights as 2:4 sparse tensors."""
    sparse_cls = _semi_structured_class()
    model = model.to(device=device, dtype=torch.float16).eval()
    modules = dict(model.named_modules())
    for name in layers:
        module = modules[name]
        module.weight = nn.Parameter(sparse_cls.from_dense(module.weight.detach()), False)
    return model


def int8_support(device: torch.device) -> str | None:
    """None if dynamic int8 kernels run on `device`, else why not."""
    if device.type != "cpu":
        return f"dynamic int8 quantization runs on the CPU only; this case runs on {device}"
    if torch.backends.quantized.engine in (None, "none"):
        return "this PyTorch build has no quantized CPU engine (fbgemm/qnnpack/x86)"
    return None


def check_supported(variant: str, device: str | torch.device) -> None:
    """Raise VariantUnsupported if `variant` cannot run on `device` (before any training)."""
    device = torch.device(device)
    reason = None
    if variant == SEMI_STRUCTURED:
        reason = semi_structured_support(device)
    elif variant == INT8_DYNAMIC:
        reason = int8_support(device)
    if reason:
        raise VariantUnsupported(variant, reason)


def quantize_dynamic_int8(model: nn.Module, module_types: list[str]) -> nn.Module:
    """torch's dynamic int8 quantization of the named module types (CPU kernels)."""
    from torch.ao.quantization import quantize_dynamic

    types = {getattr(nn, name) for name in module_types}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return quantize_dynamic(model.eval(), types, dtype=torch.qint8)
