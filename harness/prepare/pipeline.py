"""The five-step pipeline of a case's model, cached: train, rank, prune, fine-tune, evaluate.

1. train the dense model (cached, shared by every variant of a case),
2. rank weights (|w| globally, L1 norm per channel, |w| within groups of four),
3. prune (or quantize),
4. fine-tune with the masks kept,
5. evaluate test accuracy (energy is measured later, by the runner).

Given a meter, step 1 (dense) and steps 2-4 (a variant) each run in a window of it
(`harness.prepare.energy`); the figure is kept in the cache entry, and a variant's entry
keeps the figure of the dense training it was made from as well.

Sparsity is reported over the prunable weights.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.measure.meter import EnergyMeter
from harness.prepare.cache import ModelCache, cache_key
from harness.prepare.compress import Compressed, compress_model
from harness.prepare.energy import PrepareEnergy, measure_step
from harness.prepare.hardware import check_supported, to_semi_structured
from harness.prepare.sparsity import SparsityReport, sparsity_report
from harness.prepare.training import EpochDone, evaluate, seed_everything, train
from harness.spec.catalog import DatasetSplits, build_model, model_kwargs_for_input
from harness.spec.train_config import TrainConfig
from harness.spec.variants import DENSE, resolve_variant


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
    preparation: PrepareEnergy | None = None  # its own step(s), None when not measured
    dense_preparation: PrepareEnergy | None = None  # a variant: the dense training it reused

    @property
    def accuracy_drop(self) -> float:
        """Dense accuracy minus this variant's accuracy (fraction; positive = worse)."""
        return self.dense_accuracy - self.accuracy


def _finalize(model: nn.Module, meta: Mapping[str, Any], device: torch.device) -> nn.Module:
    """Put a prepared (or cached) model on its run device, in its run format."""
    if meta.get("sparse_layers"):
        return to_semi_structured(model, list(meta["sparse_layers"]), device)
    return model.to(device).eval()


def effective_params(resolved: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """The variant's parameters as they are used: `fine_tune_lr = 0` (the training rate)
    becomes that rate, so cases.csv never shows a rate of zero."""
    if resolved.get("fine_tune_lr") == 0:
        return {**resolved, "fine_tune_lr": config.lr}
    return resolved


def _recipe(
    model_name: str,
    data: DatasetSplits,
    variant: str,
    params: Mapping[str, Any] | None,
    config: TrainConfig,
    seed: int,
    model_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The key fields of a prepared model: its parameters as used (`effective_params`)
    and the model's arguments: those for the data's shape, then the suite's `options`
    (which win where both name an argument)."""
    resolved = effective_params(resolve_variant(variant, params), config)
    model_kwargs = {
        **model_kwargs_for_input(model_name, data.input_shape, data.num_classes),
        **dict(model_options or {}),
    }
    return _key_fields(model_name, model_kwargs, data, variant, resolved, config, seed)


def _key_fields(
    model_name: str,
    model_kwargs: dict[str, Any],
    data: DatasetSplits,
    variant: str,
    resolved: dict[str, Any],
    config: TrainConfig,
    seed: int,
) -> dict[str, Any]:
    """Everything that determines the prepared model (its cache key is a hash of these)."""
    return {
        "model": model_name,
        "model_kwargs": model_kwargs,
        "data": data.fingerprint or {"name": data.name},
        "variant": variant,
        "params": resolved,
        # loader workers do not change the weights, so they do not change the key
        "train": {k: v for k, v in config.as_dict().items() if k != "num_workers"},
        "seed": seed,
    }


def _train_dense(
    key_fields: dict[str, Any],
    data: DatasetSplits,
    config: TrainConfig,
    device: torch.device,
    say: Callable[[str], None],
    on_epoch: EpochDone | None = None,
) -> Compressed:
    """Step 1: the dense model, trained from a seeded initialisation."""
    model_name, seed = key_fields["model"], key_fields["seed"]
    seed_everything(seed)
    model = build_model(model_name, **key_fields["model_kwargs"])
    say(f"training {model_name}: {config.epochs} epochs on {data.name}")
    result = train(model, data.train, config, seed=seed, device=device, on_epoch=on_epoch)
    step = (
        f"train: {config.epochs} epochs, {result.samples} samples, "
        f"SGD lr {config.lr:g} momentum {config.momentum:g}"
    )
    return Compressed(model.eval(), [step], device)


def _evaluate_and_cache(
    compressed: Compressed,
    reference_params: int,
    dense_accuracy: float | None,
    key_fields: dict[str, Any],
    data: DatasetSplits,
    cache: ModelCache | None,
    device: torch.device,
    energy: tuple[PrepareEnergy | None, PrepareEnergy | None] = (None, None),
) -> PreparedModel:
    """Step 5 (test accuracy), then the prepared model into the cache, with `energy`:
    the figures of its own preparation and (a variant) of the dense training it reused."""
    report = sparsity_report(compressed.model, reference_params)
    own, dense = energy
    meta: dict[str, Any] = {
        "steps": [*compressed.steps, "evaluate: test accuracy"],
        "prepared_on": str(compressed.run_device),  # for the record: a hit may run elsewhere
        "input_dtype": str(compressed.input_dtype).removeprefix("torch."),
        "sparse_layers": compressed.sparse_layers,
        "report": dataclasses.asdict(report),
        **({"prepare_energy": own.to_meta()} if own is not None else {}),
        **({"dense_prepare_energy": dense.to_meta()} if dense is not None else {}),
    }
    # 2:4 conversion changes the model in place: cache the masked half-precision weights
    to_cache = copy.deepcopy(compressed.model) if compressed.sparse_layers else compressed.model
    model = _finalize(compressed.model, meta, device)
    meta["accuracy"] = evaluate(
        model, data.test, device=compressed.run_device, input_dtype=compressed.input_dtype
    )
    meta["dense_accuracy"] = meta["accuracy"] if dense_accuracy is None else dense_accuracy
    key = cache_key(key_fields)
    path = None
    if cache is not None:
        path = cache.save(
            key,
            to_cache,
            model_name=key_fields["model"],
            model_kwargs=key_fields["model_kwargs"],
            key_fields=key_fields,
            meta=meta,
        )
    prepared = _prepared(model, meta, key_fields, key, path, False, device)
    prepared.preparation, prepared.dense_preparation = own, dense  # dense's: its own origin
    return prepared


def prepare_model(
    model_name: str,
    data: DatasetSplits,
    variant: str = DENSE,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    train_config: TrainConfig | None = None,
    device: str | torch.device = "cpu",
    cache: ModelCache | None = None,
    log: Callable[[str], None] | None = None,
    on_epoch: EpochDone | None = None,
    model_options: Mapping[str, Any] | None = None,
    meter: EnergyMeter | None = None,
) -> PreparedModel:
    """Train, compress and evaluate a model, or read it from `cache` (None: no cache).

    The dense model is prepared (and cached) first and shared by all variants of the
    same model, data, training settings and seed. `log` hears what is being done
    (training, compressing); `on_epoch(epoch, mean_loss)` after every epoch of training
    or fine-tuning. `model_options` are the suite's arguments for the model's factory.
    `meter`: each step that runs is measured in a window of it (`PreparedModel.preparation`).
    Raises VariantUnsupported before any training if the variant cannot run on `device`.
    """
    config = train_config or TrainConfig()
    key_fields = _recipe(model_name, data, variant, params, config, seed, model_options)
    model_kwargs = key_fields["model_kwargs"]
    device = torch.device(device)
    check_supported(variant, device)
    key = cache_key(key_fields)
    say = log or (lambda message: None)
    hit = cache.load(key, model_name, model_kwargs) if cache is not None else None
    if hit is not None and _meta_problem(hit.meta) is None:
        model = _finalize(hit.model, hit.meta, device)
        return _prepared(model, hit.meta, key_fields, key, hit.path, True, device)
    if hit is not None:
        warnings.warn(
            f"ignoring cache file {hit.path} ({_meta_problem(hit.meta)}); the model is "
            "prepared again and the file overwritten",
            stacklevel=2,
        )
    if variant == DENSE:
        compressed, energy = measure_step(
            meter,
            f"prepare {key}",
            "train",
            lambda: _train_dense(key_fields, data, config, device, say, on_epoch),
        )
        reference_params = sparsity_report(compressed.model).total_params
        return _evaluate_and_cache(
            compressed, reference_params, None, key_fields, data, cache, device, (energy, None)
        )
    dense = prepare_model(
        model_name,
        data,
        DENSE,
        seed=seed,
        train_config=config,
        device=device,
        cache=cache,
        log=log,
        on_epoch=on_epoch,
        model_options=model_options,
        meter=meter,
    )
    say(f"compressing {model_name} to {variant}")
    compressed, energy = _compress_step(dense, key_fields, data, config, on_epoch, meter, key)
    return _evaluate_and_cache(
        compressed,
        dense.report.total_params,
        dense.accuracy,
        key_fields,
        data,
        cache,
        device,
        (energy, dense.preparation),
    )


def _compress_step(
    dense: PreparedModel,
    key_fields: dict[str, Any],
    data: DatasetSplits,
    config: TrainConfig,
    on_epoch: EpochDone | None,
    meter: EnergyMeter | None,
    key: str,
) -> tuple[Compressed, PrepareEnergy | None]:
    """Steps 2-4 on the trained dense model, in a window of `meter`; the steps that made
    it are dense's, then its own."""
    compressed, energy = measure_step(
        meter,
        f"prepare {key}",
        "compress",
        lambda: compress_model(
            dense.model,
            key_fields["variant"],
            key_fields["params"],
            data,
            train_config=config,
            seed=key_fields["seed"],
            device=dense.device,
            on_epoch=on_epoch,
        ),
    )
    trained = [step for step in dense.steps if not step.startswith("evaluate")]
    compressed.steps = [*trained, *compressed.steps]
    return compressed, energy


def training_plan(
    model_name: str,
    data: DatasetSplits,
    variant: str = DENSE,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    train_config: TrainConfig | None = None,
    cache: ModelCache | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Epochs of training that `prepare_model` would run, by cache key: the dense model's
    training unless its file is in `cache`, and the variant's fine-tuning unless its file
    is ({} when both are). For progress estimates: a damaged file is prepared again."""
    config = train_config or TrainConfig()

    def missing(name: str, chosen: Mapping[str, Any] | None) -> str | None:
        key = cache_key(_recipe(model_name, data, name, chosen, config, seed, model_options))
        return None if cache is not None and cache.path_for(key).exists() else key

    key = missing(variant, params)
    if key is None:
        return {}
    if variant == DENSE:
        return {key: config.epochs}
    plan = {key: int(resolve_variant(variant, params).get("fine_tune_epochs", 0))}
    dense_key = missing(DENSE, None)
    if dense_key is not None:
        plan[dense_key] = config.epochs
    return plan


def _meta_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with a cache file's meta (written by `_evaluate_and_cache`), or None."""
    fields = {f.name for f in dataclasses.fields(SparsityReport)}
    report = meta.get("report")
    checks = {
        "accuracy": isinstance(meta.get("accuracy"), int | float),
        "dense_accuracy": isinstance(meta.get("dense_accuracy"), int | float),
        "steps": isinstance(meta.get("steps"), list)
        and all(isinstance(step, str) for step in meta["steps"]),
        "input_dtype": isinstance(getattr(torch, str(meta.get("input_dtype")), None), torch.dtype),
        "sparse_layers": isinstance(meta.get("sparse_layers") or [], list)
        and all(isinstance(name, str) for name in meta.get("sparse_layers") or []),
        "report": isinstance(report, Mapping)
        and set(report) == fields
        and all(isinstance(v, int) for v in report.values()),
    }
    bad = [name for name, ok in checks.items() if not ok]
    return f"meta field {bad[0]} missing or malformed" if bad else None


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
        preparation=PrepareEnergy.from_meta(meta.get("prepare_energy"), from_cache),
        dense_preparation=PrepareEnergy.from_meta(meta.get("dense_prepare_energy"), True),
    )
