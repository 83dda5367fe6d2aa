"""Suite files (TOML): models x variants x modes x batch sizes x devices, and run settings.

Validation names the file, the key and the allowed values. A suite looks like:

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

import itertools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from benchmarks.models import model_spec
from harness.errors import EnergyHarnessError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

MODES = ("inference", "training", "ddp-training")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "synthetic")

SUITE_DEFAULTS: dict[str, Any] = {
    "name": "unnamed",
    "description": "",
    "dataset": "digits",
    "data_root": None,
    "download": False,
    "repetitions": 5,
    "warmup_iterations": 5,
    "min_window_s": 0.5,
    "idle_baseline_s": 3.0,
    "probes": [],
    "timeline_hz": 10.0,
    "seed": 0,
    "train_epochs": 4,
    "finetune_epochs": 2,
    "batch_sizes": [64],
    "modes": ["inference"],
    "devices": ["cpu"],
    "estimate_profile": "auto",
    "peer": None,
    "nproc_per_node": 2,
    "nnodes": 1,
}
CARBON_KEYS = {"country": str, "region": str, "intensity_g_per_kwh": float, "pue": float}
MODEL_KEYS = {"name", "dataset", "variants", "batch_sizes", "modes", "devices", "options"}


@dataclass(frozen=True)
class Case:
    """One measured configuration. `case_id` is stable across runs (used by resume/compare)."""

    model: str
    dataset: str
    variant: str
    variant_params: tuple[tuple[str, Any], ...]
    mode: str
    batch_size: int
    device: str
    model_options: tuple[tuple[str, Any], ...] = ()

    @property
    def variant_label(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.variant_params)
        return f"{self.variant}[{params}]" if params else self.variant

    @property
    def case_id(self) -> str:
        return f"{self.model}/{self.variant_label}/{self.mode}/bs{self.batch_size}/{self.device}"

    def columns(self, run_id: str) -> dict[str, Any]:
        """The columns that name this case, in measurements.csv and cases.csv alike."""
        return {
            "run_id": run_id,
            "case_id": self.case_id,
            "model": self.model,
            "variant": self.variant_label,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "device": self.device,
        }


@dataclass
class Suite:
    """A parsed, validated suite: settings and the expanded list of cases."""

    source: str
    settings: dict[str, Any]
    carbon: dict[str, Any]
    cases: list[Case] = field(default_factory=list)
    text: str = ""  # the TOML as written, copied into each run directory


def _fail(source: str, key: str, problem: str) -> EnergyHarnessError:
    return EnergyHarnessError(f"{source}: {key}: {problem}")


def _check_type(source: str, key: str, value: Any, default: Any) -> Any:
    if default is None or isinstance(default, str):
        if value is not None and not isinstance(value, str):
            raise _fail(source, key, f"expected a string, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(source, key, f"expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(source, key, f"expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _fail(source, key, f"expected a number, got {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list):
            raise _fail(source, key, f"expected a list, got {value!r}")
        return value
    return value


def _unknown_keys(source: str, where: str, keys: set[str], allowed: set[str]) -> None:
    unknown = sorted(keys - allowed)
    if unknown:
        raise _fail(
            source,
            f"{where}.{unknown[0]}",
            f"unknown key; allowed keys: {', '.join(sorted(allowed))}",
        )


def _check_settings(source: str, raw: dict[str, Any]) -> dict[str, Any]:
    _unknown_keys(source, "suite", set(raw), set(SUITE_DEFAULTS))
    settings = dict(SUITE_DEFAULTS)
    for key, value in raw.items():
        settings[key] = _check_type(source, f"suite.{key}", value, SUITE_DEFAULTS[key])
    positive = ("repetitions", "min_window_s", "batch_sizes", "nproc_per_node", "nnodes")
    for key in positive:
        values = settings[key] if isinstance(settings[key], list) else [settings[key]]
        if any(not isinstance(v, (int, float)) or v <= 0 for v in values):
            raise _fail(source, f"suite.{key}", f"must be positive, got {settings[key]!r}")
    for key in (
        "warmup_iterations",
        "idle_baseline_s",
        "timeline_hz",
        "train_epochs",
        "finetune_epochs",
    ):
        if settings[key] < 0:
            raise _fail(source, f"suite.{key}", f"must be >= 0, got {settings[key]!r}")
    if settings["peer"] not in (None, "codecarbon"):
        raise _fail(source, "suite.peer", f"allowed: codecarbon, got {settings['peer']!r}")
    return settings


def _check_carbon(source: str, raw: dict[str, Any]) -> dict[str, Any]:
    _unknown_keys(source, "carbon", set(raw), set(CARBON_KEYS))
    out = {}
    for key, value in raw.items():
        expected = CARBON_KEYS[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected):
            raise _fail(source, f"carbon.{key}", f"expected a {expected.__name__}, got {value!r}")
        out[key] = value
    return out


def _variants(source: str, where: str, raw: Any) -> list[tuple[str, tuple[tuple[str, Any], ...]]]:
    from harness.compress import VARIANTS

    if not isinstance(raw, list) or not raw:
        raise _fail(source, where, "expected a non-empty list of variants")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            params = {k: v for k, v in item.items() if k != "name"}
            name = item["name"]
        else:
            raise _fail(source, f"{where}[{i}]", "expected a name or a table with `name`")
        if name not in VARIANTS:
            raise _fail(
                source, f"{where}[{i}]", f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}"
            )
        out.append((name, tuple(sorted(params.items()))))
    return out


def _check_list(source: str, key: str, values: list[Any], allowed: tuple[str, ...]) -> None:
    for value in values:
        if value not in allowed:
            raise _fail(source, key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")


def _check_devices(source: str, key: str, devices: list[Any]) -> None:
    for device in devices:
        if not isinstance(device, str) or not (
            device == "cpu" or device == "cuda" or device.startswith("cuda:")
        ):
            raise _fail(source, key, f"{device!r} is not a device; allowed: cpu, cuda, cuda:N")


def parse_suite(text: str, source: str) -> Suite:
    """Parse and validate suite TOML text; `source` names it in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnergyHarnessError(f"{source}: not valid TOML: {exc}") from exc
    _unknown_keys(source, "(top level)", set(raw), {"suite", "carbon", "models"})
    settings = _check_settings(source, raw.get("suite", {}))
    carbon = _check_carbon(source, raw.get("carbon", {}))
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        raise _fail(source, "models", "the suite needs at least one [[models]] table")
    cases: list[Case] = []
    for i, entry in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(entry, dict):
            raise _fail(source, where, "expected a table")
        _unknown_keys(source, where, set(entry), MODEL_KEYS)
        name = entry.get("name")
        if not isinstance(name, str):
            raise _fail(source, f"{where}.name", "missing model name")
        try:
            model_spec(name)
        except EnergyHarnessError as exc:
            raise _fail(source, f"{where}.name", str(exc)) from None
        dataset = entry.get("dataset", settings["dataset"])
        _check_list(source, f"{where}.dataset", [dataset], DATASETS)
        modes = entry.get("modes", settings["modes"])
        batch_sizes = entry.get("batch_sizes", settings["batch_sizes"])
        devices = entry.get("devices", settings["devices"])
        for key, value in (("modes", modes), ("batch_sizes", batch_sizes), ("devices", devices)):
            if not isinstance(value, list) or not value:
                raise _fail(source, f"{where}.{key}", f"expected a non-empty list, got {value!r}")
        _check_list(source, f"{where}.modes", modes, MODES)
        _check_devices(source, f"{where}.devices", devices)
        if any(not isinstance(b, int) or isinstance(b, bool) or b <= 0 for b in batch_sizes):
            raise _fail(source, f"{where}.batch_sizes", f"must be positive integers: {batch_sizes}")
        options = entry.get("options", {})
        if not isinstance(options, dict):
            raise _fail(source, f"{where}.options", "expected a table of factory arguments")
        variants = _variants(source, f"{where}.variants", entry.get("variants", ["dense"]))
        for (variant, params), mode, batch, device in itertools.product(
            variants, modes, batch_sizes, devices
        ):
            cases.append(
                Case(
                    name,
                    dataset,
                    variant,
                    params,
                    mode,
                    batch,
                    device,
                    tuple(sorted(options.items())),
                )
            )
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise _fail(source, "models", f"case listed twice: {duplicates[0]}")
    return Suite(source, settings, carbon, cases, text)


def load_suite(path: Path | str | None) -> Suite:
    """A suite from a file, a bundled suite name (`default`, `gpu`), or the default suite."""
    if path is None or (isinstance(path, str) and "/" not in path and not path.endswith(".toml")):
        name = path or "default"
        bundled = resources.files("benchmarks") / "suites" / f"{name}.toml"
        if not bundled.is_file():
            raise EnergyHarnessError(
                f"no suite file {name!r} and no bundled suite of that name; bundled suites: "
                + ", ".join(
                    sorted(
                        p.name[:-5] for p in bundled.parent.iterdir() if p.name.endswith(".toml")
                    )
                )
            )
        return parse_suite(bundled.read_text(), f"{name} (bundled suite)")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise EnergyHarnessError(f"cannot read suite file {path}: {exc.strerror}") from exc
    return parse_suite(text, str(path))
