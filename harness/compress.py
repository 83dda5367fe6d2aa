"""Compressed variants of a trained model, prepared by the classic five-step pipeline.

1. train the dense model (cached, shared by every variant of a case),
2. rank weights (|w| globally, L1 norm per channel, |w| within groups of four),
3. prune,
4. fine-tune with the masks kept, so pruned weights stay zero (the article's recipe of
   zeroing weights and then retraining regrows them: `keep_masks=false` reproduces it),
5. evaluate test accuracy (energy is measured later, by the runner).

Variants and their parameters (defaults in `VARIANTS`):

- `dense`: the trained model.
- `threshold`: every conv/linear/attention weight with |w| < `threshold` set to zero.
- `magnitude`: global unstructured L1 pruning to `sparsity` (torch.nn.utils.prune).
- `structured`: L1-norm channel pruning with torch-pruning's dependency graph; `ratio`
  of the channels of every layer but the classifier are removed: a physically smaller
  dense model.
- `semi-structured-2:4`: 2 of every 4 weights of eligible linear layers zeroed, then
  stored as `to_sparse_semi_structured` (CUDA, compute capability >= 8.0, half precision).
  Elsewhere it raises `VariantUnsupported` with the reason, before any training.
- `int8-dynamic`: dynamic int8 quantization of linear layers (CPU only).

Norm-layer scales and all biases are never pruned (the article's `'weight' in name` rule
would also zero BatchNorm scales). Sparsity is reported over the prunable weights.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from benchmarks.data import DatasetSplits
from benchmarks.models import build_model, model_kwargs_for_input
from harness.cache import ModelCache, cache_key, quantize_dynamic_int8
from harness.training import TrainConfig, evaluate, seed_everything, train
from probes.errors import EnergyHarnessError

SEMI_STRUCTURED = "semi-structured-2:4"


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


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dense", {}, "the trained model, unchanged"),
        Variant(
            "threshold",
            {"threshold": 0.1, "fine_tune_epochs": 3, "fine_tune_lr": 0.0, "keep_masks": True},
            "weights with |w| < threshold set to zero (the article's global threshold)",
        ),
        Variant(
            "magnitude",
            {"sparsity": 0.9, "fine_tune_epochs": 3, "fine_tune_lr": 0.0, "keep_masks": True},
            "global unstructured L1 pruning to a target sparsity",
        ),
        Variant(
            "structured",
            {"ratio": 0.5, "global_pruning": False, "fine_tune_epochs": 3, "fine_tune_lr": 0.0},
            "L1-norm channel pruning (torch-pruning): a physically smaller model",
        ),
        Variant(
            SEMI_STRUCTURED,
            {"fine_tune_epochs": 3, "fine_tune_lr": 0.0},
            "2:4 semi-structured sparsity on sparse tensor cores (CUDA, half precision)",
        ),
        Variant("int8-dynamic", {}, "dynamic int8 quantization of linear layers (CPU)"),
    )
}


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


# --- what can be pruned, and how much is left ---------------------------------------

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


# --- the pruning methods --------------------------------------------------------------


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
            "structured", f"torch-pruning cannot prune {type(model).__name__}: {exc}"
        ) from exc
    if pruned_shape != out_shape:
        raise VariantUnsupported(
            "structured",
            f"pruning changed the output shape from {tuple(out_shape)} to {tuple(pruned_shape)}: "
            "the last linear layer registered is not the classifier of this model",
        )
    return model


# --- 2:4 semi-structured and int8: where they can run --------------------------------


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
    elif variant == "int8-dynamic":
        reason = int8_support(device)
    if reason:
        raise VariantUnsupported(variant, reason)


# --- the pipeline -----------------------------------------------------------------------


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
) -> None:
    epochs = params["fine_tune_epochs"]
    if epochs == 0:
        steps.append("fine-tune: skipped (0 epochs)")
        return
    lr = params["fine_tune_lr"] or config.lr
    tune = dataclasses.replace(config, epochs=epochs, lr=lr)
    train(model, data.train, tune, seed=seed + 1, device=device)
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
) -> Compressed:
    """Steps 2-4 on a copy of the trained `dense` model (which is left untouched).

    Raises VariantUnsupported where the variant cannot run on `device`, and
    EnergyHarnessError for bad parameters.
    """
    params = resolve_variant(variant, params)
    device = torch.device(device)
    check_supported(variant, device)
    config = train_config or TrainConfig()
    model = copy.deepcopy(dense).to(device)
    seed_everything(seed + 1)
    if variant == "dense":
        return Compressed(model.eval(), [], device)
    if variant == "int8-dynamic":
        quantized = quantize_dynamic_int8(model.cpu(), ["Linear"])
        return Compressed(quantized, ["quantize: int8 dynamic, linear layers"], device)
    steps: list[str] = []
    if variant == "threshold":
        threshold_prune(model, params["threshold"])
        steps += ["rank: |w| per weight", f"prune: |w| < {params['threshold']:g} set to 0"]
    elif variant == "magnitude":
        magnitude_prune(model, params["sparsity"])
        steps.append("rank: |w| over all prunable weights (global)")
        steps.append(f"prune: {params['sparsity']:.0%} of prunable weights masked")
    elif variant == "structured":
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
        modules = dict(model.named_modules())
        for name in layers:
            prune.custom_from_mask(modules[name], "weight", two_four_mask(modules[name].weight))
        steps += ["rank: |w| in groups of 4", f"prune: 2 of 4 in {len(layers)} linear layers"]
    if variant == "structured":  # channels are gone: nothing to mask
        _fine_tune(model, params, data, config, seed, device, steps)
    elif params.get("keep_masks", True):
        _fine_tune(model, params, data, config, seed, device, steps, ", masks kept")
        make_pruning_permanent(model)
    else:  # the naive recipe: zero the weights, then retrain them freely
        make_pruning_permanent(model)
        _fine_tune(model, params, data, config, seed, device, steps, ", no masks (zeros regrow)")
    compressed = Compressed(model.eval(), steps, device)
    if variant == SEMI_STRUCTURED:  # the sparse kernels run in half precision
        compressed.model = model.half()
        compressed.input_dtype, compressed.sparse_layers = torch.float16, layers
    return compressed


@dataclass
class PreparedModel:
    """A model ready to measure, with its accuracy and size. `accuracy` is a fraction."""

    model: nn.Module
    model_name: str
    model_kwargs: dict[str, Any]
    dataset: str
    variant: str
    params: dict[str, Any]
    seed: int
    accuracy: float
    dense_accuracy: float
    report: SparsityReport
    steps: tuple[str, ...]
    device: torch.device  # where the model lives and must run
    input_dtype: torch.dtype
    cache_key: str
    cache_path: Path | None = None
    from_cache: bool = False

    @property
    def accuracy_drop(self) -> float:
        """Dense accuracy minus this variant's accuracy (fraction; positive = worse)."""
        return self.dense_accuracy - self.accuracy


def _finalize(model: nn.Module, meta: Mapping[str, Any], device: torch.device) -> nn.Module:
    """Put a prepared (or cached) model on its run device, in its run format."""
    if meta.get("sparse_layers"):
        return to_semi_structured(model, list(meta["sparse_layers"]), device)
    return model.to(device).eval()


def prepare_model(
    model_name: str,
    data: DatasetSplits,
    variant: str = "dense",
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    train_config: TrainConfig | None = None,
    device: str | torch.device = "cpu",
    cache: ModelCache | None = None,
    log: Callable[[str], None] | None = None,
) -> PreparedModel:
    """Train, compress and evaluate a model, or read it from `cache` (None: no cache).

    The dense model is prepared (and cached) first and shared by all variants of the
    same model, data, training settings and seed. Raises VariantUnsupported before any
    training if the variant cannot run on `device`.
    """
    resolved = resolve_variant(variant, params)
    device = torch.device(device)
    check_supported(variant, device)
    config = train_config or TrainConfig()
    model_kwargs = model_kwargs_for_input(model_name, data.input_shape, data.num_classes)
    key_fields = {
        "model": model_name,
        "model_kwargs": model_kwargs,
        "data": data.fingerprint or {"name": data.name},
        "variant": variant,
        "params": resolved,
        # loader workers do not change the weights, so they do not change the key
        "train": {k: v for k, v in config.as_dict().items() if k != "num_workers"},
        "seed": seed,
    }
    key = cache_key(key_fields)
    say = log or (lambda message: None)
    hit = cache.load(key) if cache is not None else None
    if hit is not None:
        meta = hit.meta
        say(f"{model_name}/{variant}: from cache {hit.path}")
        model = _finalize(hit.model, meta, device)
        return _prepared(model, meta, key_fields, key, hit.path, True, device)

    if variant == "dense":
        seed_everything(seed)
        model = build_model(model_name, **model_kwargs)
        say(f"{model_name}: training {config.epochs} epochs on {data.name}")
        result = train(model, data.train, config, seed=seed, device=device)
        compressed = Compressed(model.eval(), [], device)
        compressed.steps = [
            f"train: {config.epochs} epochs, {result.samples} samples, "
            f"SGD lr {config.lr:g} momentum {config.momentum:g}"
        ]
        dense_accuracy = None
        reference_params = sparsity_report(model).total_params
    else:
        dense = prepare_model(
            model_name,
            data,
            "dense",
            seed=seed,
            train_config=config,
            device=device,
            cache=cache,
            log=log,
        )
        say(f"{model_name}/{variant}: compressing")
        compressed = compress_model(
            dense.model, variant, resolved, data, train_config=config, seed=seed, device=device
        )
        trained = [step for step in dense.steps if not step.startswith("evaluate")]
        compressed.steps = [*trained, *compressed.steps]
        dense_accuracy = dense.accuracy
        reference_params = dense.report.total_params
    report = sparsity_report(compressed.model, reference_params)
    meta: dict[str, Any] = {
        "steps": [*compressed.steps, "evaluate: test accuracy"],
        "prepared_on": str(compressed.run_device),  # for the record: a hit may run elsewhere
        "input_dtype": str(compressed.input_dtype).removeprefix("torch."),
        "sparse_layers": compressed.sparse_layers,
        "report": dataclasses.asdict(report),
    }
    # 2:4 conversion changes the model in place: cache the masked half-precision weights
    to_cache = copy.deepcopy(compressed.model) if compressed.sparse_layers else compressed.model
    model = _finalize(compressed.model, meta, device)
    meta["accuracy"] = evaluate(
        model, data.test, device=compressed.run_device, input_dtype=compressed.input_dtype
    )
    meta["dense_accuracy"] = meta["accuracy"] if dense_accuracy is None else dense_accuracy
    path = None
    if cache is not None:
        path = cache.save(
            key,
            to_cache,
            model_name=model_name,
            model_kwargs=model_kwargs,
            key_fields=key_fields,
            meta=meta,
        )
    return _prepared(model, meta, key_fields, key, path, False, device)


def _prepared(
    model: nn.Module,
    meta: Mapping[str, Any],
    key_fields: Mapping[str, Any],
    key: str,
    path: Path | None,
    from_cache: bool,
    device: torch.device,
) -> PreparedModel:
    return PreparedModel(
        model=model,
        model_name=key_fields["model"],
        model_kwargs=dict(key_fields["model_kwargs"]),
        dataset=key_fields["data"].get("name", "?"),
        variant=key_fields["variant"],
        params=dict(key_fields["params"]),
        seed=key_fields["seed"],
        accuracy=float(meta["accuracy"]),
        dense_accuracy=float(meta["dense_accuracy"]),
        report=SparsityReport(**meta["report"]),
        steps=tuple(meta["steps"]),
        device=device,
        input_dtype=getattr(torch, meta["input_dtype"]),
        cache_key=key,
        cache_path=path,
        from_cache=from_cache,
    )
