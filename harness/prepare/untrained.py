"""A variant applied to randomly initialised weights, for estimates without data or hardware.

`energy-harness estimate` counts a model's work; it needs the variant's structure (which
layers are pruned, how small a structured model gets), not a trained model. Here the
pipeline's compression runs on untrained weights with no fine-tuning, and says so. The
initialisation is seeded, so the same call gives the same model (and the same counts).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.errors import EnergyHarnessError
from harness.prepare.compress import compress_model
from harness.prepare.hardware import semi_structured_layers
from harness.prepare.pruning import apply_two_four_masks, make_pruning_permanent
from harness.spec.catalog import (
    DatasetSplits,
    build_model,
    example_input,
    model_kwargs_for_input,
    model_spec,
)
from harness.spec.precision import FP32
from harness.spec.variants import (
    DENSE,
    SEMI_STRUCTURED,
    THRESHOLD,
    VariantUnsupported,
    resolve_variant,
)
from harness.workloads.precision import check_variant_precision

UNTRAINED_NOTE = (
    "variant {variant} applied to randomly initialised weights, without training or fine-tuning"
)


def untrained_variant(
    model_name: str,
    variant: str,
    batch_size: int,
    params: dict[str, object] | None = None,
    *,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    precision: str = FP32,
) -> tuple[nn.Module, torch.Tensor, list[str]]:
    """A randomly initialised model compressed as `variant`, one batch of input, and notes.

    Weights and input are drawn from `seed` (the caller's random state is left as it
    was). `input_shape` (one sample) replaces the model's own; factories that take
    `in_channels`, `in_features` or `seq_len` are built for it. `semi-structured-2:4`,
    which runs only on sparse tensor cores, is estimated as its 2:4 pattern applied in
    half precision. Raises EnergyHarnessError for a bad batch size, a variant that cannot
    apply, or a variant with its own number format at a precision other than fp32.
    """
    if batch_size < 1:
        raise EnergyHarnessError(f"--batch-size must be at least 1, got {batch_size}")
    check_variant_precision(precision, variant)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _seeded_variant(model_name, variant, batch_size, params, input_shape, seed)


def _seeded_variant(
    model_name: str,
    variant: str,
    batch_size: int,
    params: dict[str, object] | None,
    input_shape: tuple[int, ...] | None,
    seed: int,
) -> tuple[nn.Module, torch.Tensor, list[str]]:
    spec = model_spec(model_name)
    shape = tuple(input_shape or spec.input_shape)
    kwargs = model_kwargs_for_input(model_name, shape, None) if input_shape else {}
    model = build_model(model_name, **kwargs)
    example = example_input(model_name, batch_size, input_shape=shape)
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
    data = DatasetSplits(  # shapes only: no fine-tuning runs
        "none", [], [], shape, 10, "no data (untrained)", spec.input_dtype
    )
    compressed = compress_model(model, variant, resolved, data, seed=seed, device="cpu")
    return compressed.model, example, notes
