"""Compression variants by name: their parameters, defaults and allowed ranges (no torch).

A suite names variants (`"dense"`, `{ name = "magnitude", sparsity = 0.9 }`); this module
checks them when the suite is read, so a bad value fails before any training. What each
variant does to a model is in `harness.prepare`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import EnergyHarnessError

DENSE = "dense"
THRESHOLD = "threshold"
MAGNITUDE = "magnitude"
STRUCTURED = "structured"
SEMI_STRUCTURED = "semi-structured-2:4"
INT8_DYNAMIC = "int8-dynamic"


class VariantUnsupported(EnergyHarnessError):
    """This variant cannot run here (hardware or model); the case is skipped, not failed."""

    def __init__(self, variant: str, reason: str) -> None:
        super().__init__(f"variant {variant!r} skipped: {reason}")
        self.variant = variant
        self.reason = reason


@dataclass(frozen=True)
class Variant:
    """A named compression variant, its parameters' defaults and what it does."""

    name: str
    defaults: Mapping[str, Any]
    description: str
    trains: bool = True  # False: no backward pass (int8 runs inference only)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(DENSE, {}, "the trained model, unchanged"),
        Variant(
            THRESHOLD,
            {"threshold": 0.1, "fine_tune_epochs": 3, "fine_tune_lr": 0.0, "keep_masks": True},
            "weights with |w| < threshold set to zero (the article's global threshold)",
        ),
        Variant(
            MAGNITUDE,
            {"sparsity": 0.9, "fine_tune_epochs": 3, "fine_tune_lr": 0.0, "keep_masks": True},
            "global unstructured L1 pruning to a target sparsity",
        ),
        Variant(
            STRUCTURED,
            {"ratio": 0.5, "global_pruning": False, "fine_tune_epochs": 3, "fine_tune_lr": 0.0},
            "L1-norm channel pruning (torch-pruning): a physically smaller model",
        ),
        Variant(
            SEMI_STRUCTURED,
            {"fine_tune_epochs": 3, "fine_tune_lr": 0.0},
            "2:4 semi-structured sparsity on sparse tensor cores (CUDA, half precision)",
        ),
        Variant(
            INT8_DYNAMIC,
            {},
            "dynamic int8 quantization of linear layers (CPU)",
            trains=False,
        ),
    )
}
NO_BACKWARD = "dynamic int8 layers have no backward pass: int8 runs inference only"


def resolve_variant(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The variant's parameters with defaults filled in; checks names, types and ranges.

    `fine_tune_lr = 0` means the training learning rate. Raises EnergyHarnessError naming
    the bad key or value.
    """
    if name not in VARIANTS:
        raise EnergyHarnessError(f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}")
    defaults = VARIANTS[name].defaults
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        known = ", ".join(defaults) or "none"
        raise EnergyHarnessError(
            f"variant {name!r}: unknown parameter(s) {', '.join(unknown)}; known: {known}"
        )
    resolved = {**defaults, **(params or {})}
    for key, value in resolved.items():
        expected = type(defaults[key])
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or (expected is not bool and isinstance(value, bool)):
            raise EnergyHarnessError(
                f"variant {name!r}: parameter {key} must be a {expected.__name__}, got {value!r}"
            )
        if expected is float:
            resolved[key] = float(value)
    _check_ranges(name, resolved)
    return resolved


def _check_ranges(name: str, p: Mapping[str, Any]) -> None:
    def bad(key: str, rule: str) -> EnergyHarnessError:
        return EnergyHarnessError(f"variant {name!r}: {key} must be {rule}, got {p[key]!r}")

    if "sparsity" in p and not 0.0 <= p["sparsity"] < 1.0:
        raise bad("sparsity", "in [0, 1) (a fraction of the prunable weights)")
    if "ratio" in p and not 0.0 <= p["ratio"] < 1.0:
        raise bad("ratio", "in [0, 1) (a fraction of each layer's channels)")
    if "threshold" in p and not (p["threshold"] >= 0 and math.isfinite(p["threshold"])):
        raise bad("threshold", "a finite number >= 0")
    if "fine_tune_epochs" in p and p["fine_tune_epochs"] < 0:
        raise bad("fine_tune_epochs", ">= 0")
    if "fine_tune_lr" in p and not (p["fine_tune_lr"] >= 0 and math.isfinite(p["fine_tune_lr"])):
        raise bad("fine_tune_lr", ">= 0 (0: the training learning rate)")


CONTROL_LABEL = "dense (control)"  # the A/A control's variant column: dense, measured again


def variant_label(name: str, params: Mapping[str, Any] | tuple[tuple[str, Any], ...]) -> str:
    """`magnitude[sparsity=0.9]`: the variant and the parameters a suite gave it."""
    items = params.items() if isinstance(params, Mapping) else params
    text = ",".join(f"{k}={v}" for k, v in items)
    return f"{name}[{text}]" if text else name


def check_trainable(variant: str) -> None:
    """Raise VariantUnsupported for a variant whose model has no backward pass."""
    if variant in VARIANTS and not VARIANTS[variant].trains:
        raise VariantUnsupported(variant, NO_BACKWARD)
