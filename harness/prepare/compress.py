"""Steps 2-4 of the pipeline on a trained model: rank, prune (or quantize), fine-tune.

Variants (parameters and defaults in `harness.spec.variants`):

- `dense`: the trained model.
- `threshold`: every conv/linear/attention weight with |w| < `threshold` set to zero.
- `magnitude`: global unstructured L1 pruning to `sparsity` (torch.nn.utils.prune).
- `structured`: L1-norm channel pruning; `ratio` of the channels of every layer but the
  classifier are removed: a physically smaller dense model.
- `semi-structured-2:4`: 2 of every 4 weights of eligible linear layers zeroed, then
  stored as `to_sparse_semi_structured` (CUDA, compute capability >= 8.0, half precision).
  Elsewhere it raises `VariantUnsupported` with the reason, before any training.
- `int8-dynamic`: dynamic int8 quantization of linear layers (CPU only).

Fine-tuning keeps the masks, so pruned weights stay zero (the article's recipe of zeroing
weights and then retraining regrows them: `keep_masks=false` reproduces it).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from harness.prepare.hardware import check_supported, quantize_dynamic_int8, semi_structured_layers
from harness.prepare.pruning import (
    apply_two_four_masks,
    magnitude_prune,
    make_pruning_permanent,
    structured_prune,
    threshold_prune,
)
from harness.prepare.training import EpochDone, seed_everything, train
from harness.spec.catalog import DatasetSplits
from harness.spec.train_config import TrainConfig
from harness.spec.variants import (
    DENSE,
    INT8_DYNAMIC,
    MAGNITUDE,
    SEMI_STRUCTURED,
    STRUCTURED,
    THRESHOLD,
    VariantUnsupported,
    resolve_variant,
)


@dataclass
class Compressed:
    """A compressed model before evaluation, and what was done to it."""

    model: nn.Module
    steps: list[str]
    run_device: torch.device
    input_dtype: torch.dtype = torch.float32
    sparse_layers: list[str] = field(default_factory=list)  # 2:4 only


def _fine_tune(
    model: nn.Module,
    params: Mapping[str, Any],
    data: DatasetSplits,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    steps: list[str],
    note: str = "",
    on_epoch: EpochDone | None = None,
) -> None:
    epochs = params["fine_tune_epochs"]
    if epochs == 0:
        steps.append("fine-tune: skipped (0 epochs)")
        return
    lr = params["fine_tune_lr"] or config.lr
    tune = dataclasses.replace(config, epochs=epochs, lr=lr)
    train(model, data.train, tune, seed=seed + 1, device=device, on_epoch=on_epoch)
    steps.append(f"fine-tune: {epochs} epochs, lr {lr:g}{note}")


def compress_model(
    dense: nn.Module,
    variant: str,
    params: Mapping[str, Any] | None,
    data: DatasetSplits,
    *,
    train_config: TrainConfig | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: EpochDone | None = None,
) -> Compressed:
    """Steps 2-4 on a copy of the trained `dense` model (which is left untouched);
    `on_epoch` hears every fine-tuning epoch.

    Raises VariantUnsupported where the variant cannot run on `device`, and
    EnergyHarnessError for bad parameters.
    """
    params = resolve_variant(variant, params)
    device = torch.device(device)
    check_supported(variant, device)
    config = train_config or TrainConfig()
    model = copy.deepcopy(dense).to(device)
    seed_everything(seed + 1)
    if variant == DENSE:
        return Compressed(model.eval(), [], device)
    if variant == INT8_DYNAMIC:
        quantized = quantize_dynamic_int8(model.cpu(), ["Linear"])
        return Compressed(quantized, ["quantize: int8 dynamic, linear layers"], device)
    steps: list[str] = []
    if variant == THRESHOLD:
        threshold_prune(model, params["threshold"])
        steps += ["rank: |w| per weight", f"prune: |w| < {params['threshold']:g} set to 0"]
    elif variant == MAGNITUDE:
        magnitude_prune(model, params["sparsity"])
        steps.append("rank: |w| over all prunable weights (global)")
        steps.append(f"prune: {params['sparsity']:.0%} of prunable weights masked")
    elif variant == STRUCTURED:
        example = torch.zeros((1, *data.input_shape), dtype=data.input_dtype, device=device)
        structured_prune(model, example, params["ratio"], global_pruning=params["global_pruning"])
        scope = "global" if params["global_pruning"] else "per layer"
        steps.append("rank: L1 norm per channel (dependency groups)")
        steps.append(f"prune: {params['ratio']:.0%} of channels removed {scope}")
    elif variant == SEMI_STRUCTURED:
        layers = semi_structured_layers(model)
        if not layers:
            raise VariantUnsupported(
                variant,
                f"no linear layer of {type(model).__name__} has a shape the 2:4 kernels "
                "accept (rows a multiple of 32, columns a multiple of 64)",
            )
        apply_two_four_masks(model, layers)
        steps += ["rank: |w| in groups of 4", f"prune: 2 of 4 in {len(layers)} linear layers"]
    if variant == STRUCTURED:  # channels are gone: nothing to mask
        _fine_tune(model, params, data, config, seed, device, steps, on_epoch=on_epoch)
    elif params.get("keep_masks", True):
        _fine_tune(model, params, data, config, seed, device, steps, ", masks kept", on_epoch)
        make_pruning_permanent(model)
    else:  # the naive recipe: zero the weights, then retrain them freely
        make_pruning_permanent(model)
        note = ", no masks (zeros regrow)"
        _fine_tune(model, params, data, config, seed, device, steps, note, on_epoch)
    compressed = Compressed(model.eval(), steps, device)
    if variant == SEMI_STRUCTURED:  # the sparse kernels run in half precision
        compressed.model = model.half()
        compressed.input_dtype, compressed.sparse_layers = torch.float16, layers
    return compressed
