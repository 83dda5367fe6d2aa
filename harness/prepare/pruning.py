"""Steps 2 and 3 of the pipeline: rank weights and prune them.

- `threshold`: every prunable weight with |w| < threshold set to zero (the article's rule).
- `magnitude`: global unstructured L1 pruning to a target sparsity.
- `structured`: L1-norm channel pruning with torch-pruning's dependency graph.
- 2:4: in every group of four weights of a row, the two largest |w| are kept.

Unstructured pruning is applied as masks (torch.nn.utils.prune) so that fine-tuning keeps
the zeros; `make_pruning_permanent` folds them into the weights. Norm-layer scales and
all biases are never pruned (the article's `'weight' in name` rule would also zero
BatchNorm scales).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.utils import prune

from harness.errors import EnergyHarnessError
from harness.spec.variants import STRUCTURED, VariantUnsupported

_PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, parameter name) of every conv, linear and attention input-projection weight."""
    found: list[tuple[nn.Module, str]] = []
    for module in model.modules():
        if isinstance(module, _PRUNABLE_TYPES):
            found.append((module, "weight"))
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            found.append((module, "in_proj_weight"))
    return found


def threshold_prune(model: nn.Module, threshold: float) -> None:
    """The article's rule: every prunable weight with |w| < threshold becomes zero.

    Applied as masks (torch.nn.utils.prune) so that fine-tuning keeps the zeros;
    `make_pruning_permanent` folds them into the weights. Biases are left alone.
    """
    for module, name in prunable_weights(model):
        weight = getattr(module, name)
        prune.custom_from_mask(module, name, mask=(weight.detach().abs() >= threshold))


def magnitude_prune(model: nn.Module, sparsity: float) -> None:
    """Global L1 pruning: the `sparsity` fraction of smallest |w| over all prunable weights.

    Exactly round(sparsity x prunable weights) weights are masked (ties broken by order).
    """
    prune.global_unstructured(
        prunable_weights(model), pruning_method=prune.L1Unstructured, amount=sparsity
    )


def two_four_mask(weight: torch.Tensor) -> torch.Tensor:
    """The 2:4 mask of a 2-D weight: in each group of 4 along a row, keep the 2 largest |w|.

    Raises EnergyHarnessError if the row length is not a multiple of 4.
    """
    rows, cols = weight.shape
    if cols % 4:
        raise EnergyHarnessError(f"2:4 sparsity needs rows of a multiple of 4 values, got {cols}")
    groups = weight.detach().abs().reshape(-1, 4)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(1, groups.topk(2, dim=1).indices, True)
    return mask.reshape(rows, cols)


def make_pruning_permanent(model: nn.Module) -> None:
    """Fold every pruning mask into its weight (zeros stay zeros) and drop the hooks."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)


def classifier_layer(model: nn.Module) -> nn.Module:
    """The last linear (else conv) layer: its outputs are the classes, never pruned."""
    layers = [m for m, _ in prunable_weights(model) if isinstance(m, _PRUNABLE_TYPES)]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    if not (linears or layers):
        raise EnergyHarnessError(f"{type(model).__name__} has no linear or conv layer to prune")
    return (linears or layers)[-1]


def structured_prune(
    model: nn.Module,
    example_input: torch.Tensor,
    ratio: float,
    *,
    global_pruning: bool = False,
) -> nn.Module:
    """Remove the `ratio` of channels with the smallest L1 norm from every layer (in place).

    torch-pruning's dependency graph keeps coupled layers consistent (residual adds,
    depthwise convs, attention heads); the classifier keeps its outputs. Raises
    VariantUnsupported if the graph cannot be built for this model.
    """
    import torch_pruning as tp

    with torch.no_grad():
        out_shape = model.eval()(example_input).shape
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
            pruner = tp.pruner.MetaPruner(
                model,
                example_input,
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=ratio,
                global_pruning=global_pruning,
                ignored_layers=[classifier_layer(model)],
            )
            pruner.step()
        with torch.no_grad():
            pruned_shape = model.eval()(example_input).shape
    except EnergyHarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch-pruning fails in many ways
        raise VariantUnsupported(
            STRUCTURED, f"torch-pruning cannot prune {type(model).__name__}: {exc}"
        ) from exc
    if pruned_shape != out_shape:
        raise VariantUnsupported(
            STRUCTURED,
            f"pruning changed the output shape from {tuple(out_shape)} to {tuple(pruned_shape)}: "
            "the last linear layer registered is not the classifier of this model",
        )
    return model


def apply_two_four_masks(model: nn.Module, layers: list[str]) -> None:
    """Mask the named linear layers' weights to the 2:4 pattern (as pruning masks)."""
    modules = dict(model.named_modules())
    for name in layers:
        prune.custom_from_mask(modules[name], "weight", two_four_mask(modules[name].weight))
