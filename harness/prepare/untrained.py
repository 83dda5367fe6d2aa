"""A variant applied to randomly initialised weights, for estimates without data or hardware.

`energy-harness estimate` counts a model's work; it needs the variant's structure (which
layers are pruned, how small a structured model gets), not a trained model. Here the
pipeline's compression runs on untrained weights with no fine-tuning, and says so.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.errors import EnergyHarnessError
from harness.prepare.compress import compress_model
from harness.prepare.hardware import semi_structured_layers
from harness.prepare.pruning import apply_two_four_masks, make_pruning_permanent
from harness.spec.catalog import DatasetSplits, build_model, example_input, model_spec
from harness.spec.variants import (
    DENSE,
    SEMI_STRUCTURED,
    THRESHOLD,
    VariantUnsupported,
    resolve_variant,
)

UNTRAINED_NOTE = (
    "variant {variant} applied to randomly initialised weights, without training or fine-tuning"
)


def untrained_variant(
    model_name: str, variant: str, batch_size: int, params: dict[str, object] | None = None
) -> tuple[nn.Module, torch.Tensor, list[str]]:
    """A randomly initialised model compressed as `variant`, one batch of input, and notes.

    `semi-structured-2:4`, which runs only on sparse tensor cores, is estimated as its
    2:4 pattern applied in half precision.
    """
    if batch_size < 1:
        raise EnergyHarnessError(f"--batch-size must be at least 1, got {batch_size}")
    model = build_model(model_name)
    example = example_input(model_name, batch_size)
    if variant == DENSE and not params:
        return model, example, []
    resolved: dict[str, Any] = resolve_variant(variant, params)
    if "fine_tune_epochs" in resolved:
        resolved["fine_tune_epochs"] = 0
    notes = [UNTRAINED_NOTE.format(variant=variant)]
    if variant == SEMI_STRUCTURED:
        layers = semi_structured_layers(model)
        if not layers:
            raise VariantUnsupported(variant, "no linear layer has a 2:4-eligible shape")
        apply_two_four_masks(model, layers)
        make_pruning_permanent(model)
        notes.append(
            f"2:4 pattern in {len(layers)} linear layers, in half precision; sparse tensor "
            "cores realise about the sparse-ideal count of those layers"
        )
        model = model.half().eval()
        example = example.half() if example.is_floating_point() else example
        return model, example, notes
    if variant == THRESHOLD:
        notes.append("threshold pruning of untrained weights: a trained model's sparsity differs")
    spec = model_spec(model_name)
    data = DatasetSplits(  # shapes only: no fine-tuning runs
        "none", [], [], spec.input_shape, 10, "no data (untrained)", spec.input_dtype
    )
    compressed = compress_model(model, variant, resolved, data, device="cpu")
    return compressed.model, example, notes
