"""Suite files (TOML): models x variants x modes x batch sizes x devices, and run settings.

A suite looks like:

    [suite]
    name = "default"
    repetitions = 5
    modes = ["inference", "training"]

    [carbon]
    country = "FRA"

    [[models]]
    name = "lenet5"
    variants = ["dense", { name = "magnitude", sparsity = 0.9 }]

Keys under [[models]] (dataset, batch_sizes, modes, devices) override the [suite] ones.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.spec.case import Case
from harness.spec.catalog import dataset_names, model_spec, suite_text
from harness.spec.settings import (
    MODES,
    CarbonSpec,
    SuiteSettings,
    check_carbon,
    check_settings,
    check_training,
    fail,
    unknown_keys,
)
from harness.spec.train_config import TrainConfig
from harness.spec.variants import DENSE, VARIANTS, resolve_variant

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

MODEL_KEYS = {
    "name",
    "dataset",
    "variants",
    "batch_sizes",
    "modes",
    "devices",
    "options",
    "input_shape",
}
SHAPED_DATASETS = ("synthetic",)  # datasets whose sample shape a model's input_shape sets


@dataclass
class Suite:
    """A parsed, validated suite: settings and the expanded list of cases."""

    source: str
    settings: SuiteSettings
    carbon: CarbonSpec
    cases: list[Case] = field(default_factory=list)
    text: str = ""  # the TOML as written, copied into each run directory
    training: dict[str, Any] = field(default_factory=dict)  # TrainConfig arguments

    def train_config(self) -> TrainConfig:
        """How the suite trains its dense models (`[training]`, `suite.train_epochs`)."""
        return TrainConfig(**{"epochs": self.settings.train_epochs, **self.training})


def _variants(source: str, where: str, raw: Any) -> list[tuple[str, tuple[tuple[str, Any], ...]]]:
    if not isinstance(raw, list) or not raw:
        raise fail(source, where, "expected a non-empty list of variants")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            params = {k: v for k, v in item.items() if k != "name"}
            name = item["name"]
        else:
            raise fail(source, f"{where}[{i}]", "expected a name or a table with `name`")
        if name not in VARIANTS:
            raise fail(
                source, f"{where}[{i}]", f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}"
            )
        try:
            resolve_variant(name, params)  # names, types and ranges, before any training
        except EnergyHarnessError as exc:
            raise fail(source, f"{where}[{i}]", str(exc)) from None
        out.append((name, tuple(sorted(params.items()))))
    return out


def _check_list(source: str, key: str, values: list[Any], allowed: tuple[str, ...]) -> None:
    for value in values:
        if value not in allowed:
            raise fail(source, key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")


def _check_devices(source: str, key: str, devices: list[Any]) -> None:
    for device in devices:
        if not isinstance(device, str) or not (
            device == "cpu" or device == "cuda" or device.startswith("cuda:")
        ):
            raise fail(source, key, f"{device!r} is not a device; allowed: cpu, cuda, cuda:N")


def _input_shape(source: str, where: str, entry: dict[str, Any], dataset: str) -> tuple[int, ...]:
    """A model's `input_shape` (one sample, e.g. [784] or [3, 32, 32]): it replaces the
    factory's `input_shape` attribute for the data made for it."""
    shape = entry["input_shape"]
    key = f"{where}.input_shape"
    if not isinstance(shape, list) or not shape:
        raise fail(source, key, f"expected a list of positive integers, got {shape!r}")
    if any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in shape):
        raise fail(source, key, f"expected a list of positive integers, got {shape!r}")
    if dataset not in SHAPED_DATASETS and ":" not in dataset:
        raise fail(
            source,
            key,
            f"dataset {dataset!r} fixes the sample shape (the model is fitted to it); "
            f"input_shape applies to: {', '.join(SHAPED_DATASETS)}, or a loader of your own "
            "('package.module:function', which receives it)",
        )
    return tuple(shape)


def _model_cases(source: str, i: int, entry: Any, settings: SuiteSettings) -> list[Case]:
    """The cases of one [[models]] table (its keys override the [suite] ones)."""
    where = f"models[{i}]"
    if not isinstance(entry, dict):
        raise fail(source, where, "expected a table")
    unknown_keys(source, where, set(entry), MODEL_KEYS)
    name = entry.get("name")
    if not isinstance(name, str):
        raise fail(source, f"{where}.name", "missing model name")
    try:
        model_spec(name)
    except EnergyHarnessError as exc:
        raise fail(source, f"{where}.name", str(exc)) from None
    dataset = entry.get("dataset", settings.dataset)
    if not (isinstance(dataset, str) and ":" in dataset):  # a user's loader is found at run
        _check_list(source, f"{where}.dataset", [dataset], tuple(dataset_names()))
    modes = entry.get("modes", list(settings.modes))
    batch_sizes = entry.get("batch_sizes", list(settings.batch_sizes))
    devices = entry.get("devices", list(settings.devices))
    for key, value in (("modes", modes), ("batch_sizes", batch_sizes), ("devices", devices)):
        if not isinstance(value, list) or not value:
            raise fail(source, f"{where}.{key}", f"expected a non-empty list, got {value!r}")
    _check_list(source, f"{where}.modes", modes, MODES)
    _check_devices(source, f"{where}.devices", devices)
    if any(not isinstance(b, int) or isinstance(b, bool) or b <= 0 for b in batch_sizes):
        raise fail(source, f"{where}.batch_sizes", f"must be positive integers: {batch_sizes}")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise fail(source, f"{where}.options", "expected a table of factory arguments")
    variants = _variants(source, f"{where}.variants", entry.get("variants", ["dense"]))
    if "input_shape" in entry:
        options = {**options, "input_shape": _input_shape(source, where, entry, dataset)}
    return [
        Case(
            name,
            dataset,
            variant,
            params,
            mode,
            batch,
            device,
            tuple(sorted(options.items())),
            settings.precision,
        )
        for (variant, params), mode, batch, device in itertools.product(
            variants, modes, batch_sizes, devices
        )
    ]


def with_controls(cases: list[Case]) -> list[Case]:
    """The cases with an A/A control after each single-process dense case that has a
    variant to compare: the dense model measured again in the same rounds, whose
    difference from dense is the noise floor of its group. `ddp-training` cases get none
    (each is a torchrun job of its own)."""
    compared = {c.group for c in cases if c.variant != DENSE}
    out = []
    for case in cases:
        out.append(case)
        if case.variant == DENSE and case.mode != "ddp-training" and case.group in compared:
            out.append(dataclasses.replace(case, control=True))
    return out


def parse_suite(text: str, source: str) -> Suite:
    """Parse and validate suite TOML text; `source` names it in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnergyHarnessError(f"{source}: not valid TOML: {exc}") from exc
    unknown_keys(source, "(top level)", set(raw), {"suite", "carbon", "training", "models"})
    settings = check_settings(source, raw.get("suite", {}))
    training = check_training(source, raw.get("training", {}), settings)
    carbon = check_carbon(source, raw.get("carbon", {}))
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        raise fail(source, "models", "the suite needs at least one [[models]] table")
    cases = [c for i, entry in enumerate(models) for c in _model_cases(source, i, entry, settings)]
    if settings.control:
        cases = with_controls(cases)
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise fail(source, "models", f"case listed twice: {duplicates[0]}")
    return Suite(source, settings, carbon, cases, text, training)


def load_suite(path: Path | str | None) -> Suite:
    """A suite from a file, a bundled suite name (`default`, `gpu`), or the default suite."""
    if path is None or (isinstance(path, str) and "/" not in path and not path.endswith(".toml")):
        name = path or "default"
        return parse_suite(suite_text(name), f"{name} (bundled suite)")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnergyHarnessError(f"cannot read suite file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise EnergyHarnessError(
            f"suite file {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "save it as UTF-8 TOML"
        ) from None
    add_import_path(path.resolve().parent)
    return parse_suite(text, str(path))


def add_import_path(folder: Path) -> None:
    """Make `folder` importable, as Python does for a script's folder: a suite's
    `pkg.mod:factory` next to it is found without PYTHONPATH (in this process and in
    the processes it starts, such as DDP ranks)."""
    text = str(folder)
    if text not in sys.path:
        sys.path.insert(0, text)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if text not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([text, *paths])
