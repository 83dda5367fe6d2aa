"""The catalog: models, datasets and suites by name, found through entry points.

Bundled content (LeNet-5, digits, the default suite, ...) registers itself exactly as a
lab's own package would, in its `pyproject.toml`:

    [project.entry-points."energy_harness.models"]
    my_net = "my_package.models:MY_NET"          # a ModelSpec, or a factory
    [project.entry-points."energy_harness.datasets"]
    my_data = "my_package.data:load_my_data"     # loader(**options) -> DatasetSplits
    [project.entry-points."energy_harness.suites"]
    my_suite = "my_package.suites:MY_SUITE"      # the path of a suite TOML file

A model can also be named `package.module:factory` without registering it. A factory
describes its input with attributes `input_shape` (default (3, 224, 224)), and
optionally `input_dtype` and `vocab_size`. Nothing here is downloaded.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError

MODEL_GROUP = "energy_harness.models"
DATASET_GROUP = "energy_harness.datasets"
SUITE_GROUP = "energy_harness.suites"
DEFAULT_INPUT_SHAPE = (3, 224, 224)


def _float32() -> Any:
    import torch

    return torch.float32


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its factory, the shape of one input sample and its dtype."""

    name: str
    factory: Callable[..., Any]
    input_shape: tuple[int, ...]
    input_dtype: Any = field(default_factory=_float32)  # a torch.dtype
    vocab_size: int | None = None  # for token inputs: values drawn from [0, vocab_size)


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset's train and test splits and what a model needs to know about them.

    `input_shape` is one sample's shape (no batch dimension); `fingerprint` identifies the
    data for cache keys (name, shapes, sizes, split seed; never a local path).
    """

    name: str
    train: Any  # a torch Dataset
    test: Any
    input_shape: tuple[int, ...]
    num_classes: int
    source: str  # where the data came from, in words
    input_dtype: Any = field(default_factory=_float32)
    fingerprint: dict[str, Any] = field(default_factory=dict)


def _registered(group: str) -> dict[str, Any]:
    """Entry point name -> entry point of one group, sorted by name."""
    return dict(sorted((ep.name, ep) for ep in entry_points(group=group)))


def _not_installed(group: str, what: str) -> EnergyHarnessError:
    return EnergyHarnessError(
        f"no {what} registered in the entry-point group {group!r}: the package is not "
        "installed; run `pip install -e .` (or `make test`) in the repository"
    )


def model_names() -> list[str]:
    """Names of the registered models."""
    return list(_registered(MODEL_GROUP))


def import_object(name: str, what: str) -> Any:
    """`package.module:attr` imported; one line naming it when that fails. The folder of
    a suite file is importable (`harness.spec.suite.add_import_path`)."""
    module_name, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EnergyHarnessError(
            f"{what} {name!r}: cannot import {attr!r} from module {module_name!r} ({exc}); "
            f"check that the module is importable (next to the suite file, or on PYTHONPATH) "
            f"and defines the {'factory' if what == 'model' else 'loader'}"
        ) from exc


def _user_factory(name: str) -> ModelSpec:
    return spec_of_factory(name, import_object(name, "model"))


def spec_of_factory(name: str, factory: Callable[..., Any]) -> ModelSpec:
    """The ModelSpec of a factory, from its `input_shape`/`input_dtype`/`vocab_size`."""
    if not callable(factory):
        raise EnergyHarnessError(f"model {name!r}: {factory!r} is not callable")
    extra = {}
    if getattr(factory, "input_dtype", None) is not None:
        extra["input_dtype"] = factory.input_dtype
    shape = tuple(getattr(factory, "input_shape", DEFAULT_INPUT_SHAPE))
    return ModelSpec(name, factory, shape, vocab_size=getattr(factory, "vocab_size", None), **extra)


def model_spec(name: str) -> ModelSpec:
    """The spec of a registered model or of a user's `package.module:factory`."""
    registered = _registered(MODEL_GROUP)
    if name in registered:
        obj = registered[name].load()
        return obj if isinstance(obj, ModelSpec) else spec_of_factory(name, obj)
    if ":" in name:
        return _user_factory(name)
    if not registered:
        raise _not_installed(MODEL_GROUP, "models")
    raise EnergyHarnessError(
        f"unknown model {name!r}; known models: {', '.join(registered)}, or a factory as "
        "'package.module:function'"
    )


def build_model(name: str, **kwargs: object) -> Any:
    """Build a model by registry name or `package.module:factory`, randomly initialised.

    Raises EnergyHarnessError, in one line naming the factory, when the factory raises or
    returns something that is not a `torch.nn.Module`.
    """
    from torch import nn

    factory = model_spec(name).factory
    where = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', factory)}"
    try:
        model = factory(**kwargs)
    except EnergyHarnessError:
        raise
    except Exception as exc:  # a user's factory can fail in any way: one line, no traceback
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise EnergyHarnessError(
            f"model {name!r}: the factory {where}({args}) raised {type(exc).__name__}: "
            f"{' '.join(str(exc).split())}; "
            "fix the factory or the arguments it is given"
        ) from exc
    if not isinstance(model, nn.Module):
        raise EnergyHarnessError(
            f"model {name!r}: the factory {where} returned {type(model).__name__}, not a "
            "torch.nn.Module; make it return the model"
        )
    return model


def model_kwargs_for_input(
    name: str, input_shape: tuple[int, ...], num_classes: int | None
) -> dict[str, int]:
    """Keyword arguments that fit a model to a dataset's sample shape and class count.

    Passes only what the factory accepts: `num_classes` (unless None); `in_channels`
    (shape[0]) for conv nets; `in_features` (values per sample) for MLPs; `seq_len` for
    token models.
    """
    params = inspect.signature(model_spec(name).factory).parameters
    kwargs: dict[str, int] = {}
    if "num_classes" in params and num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    if "in_channels" in params and len(input_shape) == 3:
        kwargs["in_channels"] = int(input_shape[0])
    if "in_features" in params:
        kwargs["in_features"] = int(math.prod(input_shape))
    if "seq_len" in params and len(input_shape) == 1:
        kwargs["seq_len"] = int(input_shape[0])
    return kwargs


def example_input(
    name: str, batch_size: int, generator: Any = None, input_shape: tuple[int, ...] | None = None
) -> Any:
    """A random batch of the model's input shape, or of `input_shape` (one sample's shape);
    tokens for sequence models."""
    import torch

    spec = model_spec(name)
    shape = (batch_size, *(input_shape or spec.input_shape))
    if spec.input_dtype == torch.long:
        return torch.randint(0, spec.vocab_size or 1000, shape, generator=generator)
    return torch.randn(shape, generator=generator)


def dataset_names() -> list[str]:
    """Names of the registered datasets."""
    return list(_registered(DATASET_GROUP))


def load_dataset(
    name: str,
    *,
    data_root: str | Path | None = None,
    download: bool = False,
    model: str | None = None,
    seed: int = 0,
    **options: Any,
) -> DatasetSplits:
    """Load a registered dataset by name (its loader receives every option given here).

    Raises EnergyHarnessError for an unknown name or data that is not on disk.
    """
    if ":" in name:  # a user's loader, `package.module:function`
        loader = import_object(name, "dataset")
        return loader(data_root=data_root, download=download, model=model, seed=seed, **options)
    registered = _registered(DATASET_GROUP)
    key = name.lower()
    if key not in registered:
        if not registered:
            raise _not_installed(DATASET_GROUP, "datasets")
        raise EnergyHarnessError(
            f"unknown dataset {name!r}; known datasets: {', '.join(registered)}, or a "
            "loader as 'package.module:function'"
        )
    loader = registered[key].load()
    return loader(data_root=data_root, download=download, model=model, seed=seed, **options)


def suite_names() -> list[str]:
    """Names of the registered (bundled) suites."""
    return list(_registered(SUITE_GROUP))


def suite_text(name: str) -> str:
    """The TOML text of a registered suite; raises naming the known suites."""
    registered = _registered(SUITE_GROUP)
    if name not in registered:
        raise EnergyHarnessError(
            f"no suite file {name!r} and no bundled suite of that name; bundled suites: "
            + (", ".join(registered) or "none (the package is not installed)")
        )
    return registered[name].load().read_text(encoding="utf-8")  # a Path or importlib Traversable
