"""The [suite] and [carbon] tables of a suite file, as typed, validated, frozen settings.

Validation names the file, the key and the allowed values. Keys under [[models]]
(dataset, batch_sizes, modes, devices) override the [suite] ones per model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from harness.errors import EnergyHarnessError
from harness.spec.precision import DEFAULT_PRECISION, check_precision

MODES = ("inference", "training", "ddp-training")


@dataclass(frozen=True)
class SuiteSettings:
    """Run settings of a suite (the [suite] table), with their defaults."""

    name: str = "unnamed"
    description: str = ""
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    repetitions: int = 5  # measured windows per case
    warmup_iterations: int = 5
    min_window_s: float = 0.5  # each window lasts at least this (and the counters' period)
    idle_baseline_s: float = 3.0  # idle power per domain first; 0 = none
    probes: tuple[str, ...] = ()
    timeline_hz: float = 10.0  # power_timeline.csv sampling; 0 = off
    seed: int = 0
    train_epochs: int = 4
    finetune_epochs: int = 2
    batch_sizes: tuple[int, ...] = (64,)
    modes: tuple[str, ...] = ("inference",)
    devices: tuple[str, ...] = ("cpu",)
    estimate_profile: str = "auto"
    simulate: tuple[str, ...] = ()  # accelerator to simulate each case on (harness.simulate)
    peer: str | None = None
    nproc_per_node: int = 2  # ddp-training: ranks per node
    nnodes: int = 1
    precision: str = DEFAULT_PRECISION  # fp32 | tf32 | bf16 | fp16 (harness.spec.precision)
    stable_max_cv_pct: float = 10.0  # above: unstable (spread of energy per sample)
    stable_max_other_cpu_pct: float = 25.0  # above, in a window: disturbed (busy machine)
    processes: int = 0  # fresh processes the rounds of a group are spread over; 0: one per round
    control: bool = True  # dense measured twice per group: the A/A control (noise floor)

    @property
    def process_count(self) -> int:
        """Worker processes per group: `processes`, or one per round when it is 0."""
        return self.processes or self.repetitions

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists), for run records."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True)
class CarbonSpec:
    """The [carbon] table: where the grid is, or its intensity, and the PUE."""

    country: str | None = None
    region: str | None = None
    intensity_g_per_kwh: float | None = None
    pue: float | None = None


# the [training] table: keys -> type (TrainConfig checks the values)
TRAINING_KEYS = {
    "optimizer": str,
    "lr": float,
    "momentum": float,
    "weight_decay": float,
    "epochs": int,
}

_DEFAULTS = SuiteSettings()
MAX_TIMELINE_HZ = 1000.0
MAX_SEED = 2**63 - 1  # torch's generators take a 64-bit seed
MAX_WINDOW_S = 3600.0  # min_window_s and idle_baseline_s: an hour per window at most
SETTING_KEYS = tuple(f.name for f in fields(SuiteSettings))
CARBON_KEYS = {"country": str, "region": str, "intensity_g_per_kwh": float, "pue": float}
_POSITIVE = (
    "repetitions",
    "min_window_s",
    "batch_sizes",
    "nproc_per_node",
    "nnodes",
    "stable_max_cv_pct",
    "stable_max_other_cpu_pct",
)
_NOT_NEGATIVE = (
    "warmup_iterations",
    "idle_baseline_s",
    "timeline_hz",
    "train_epochs",
    "finetune_epochs",
    "processes",
)


def check_seed(seed: int, where: str) -> int:
    """`seed` if torch, NumPy and Python can all be seeded with it; else raises naming
    `where` (a suite key or a flag)."""
    if not 0 <= seed <= MAX_SEED:
        raise EnergyHarnessError(f"{where}: a seed from 0 to {MAX_SEED}, got {seed}")
    return seed


def fail(source: str, key: str, problem: str) -> EnergyHarnessError:
    """The error for one key of a suite file: `file: key: problem`."""
    return EnergyHarnessError(f"{source}: {key}: {problem}")


def unknown_keys(source: str, where: str, keys: set[str], allowed: set[str]) -> None:
    """Raise for the first key not in `allowed`, listing the allowed ones."""
    unknown = sorted(keys - allowed)
    if unknown:
        raise fail(
            source,
            f"{where}.{unknown[0]}",
            f"unknown key; allowed keys: {', '.join(sorted(allowed))}",
        )


def _check_type(source: str, key: str, value: Any, default: Any) -> Any:
    if default is None or isinstance(default, str):
        if value is not None and not isinstance(value, str):
            raise fail(source, key, f"expected a string, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail(source, key, f"expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(source, key, f"expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise fail(source, key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise fail(source, key, f"expected a finite number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise fail(source, key, f"expected a list, got {value!r}")
        return tuple(value)
    return value


def check_settings(source: str, raw: dict[str, Any]) -> SuiteSettings:
    """The [suite] table as SuiteSettings; raises naming the first bad key."""
    unknown_keys(source, "suite", set(raw), set(SETTING_KEYS))
    values = {
        key: _check_type(source, f"suite.{key}", value, getattr(_DEFAULTS, key))
        for key, value in raw.items()
    }
    settings = dataclasses.replace(_DEFAULTS, **values)
    for key in _POSITIVE:
        value = getattr(settings, key)
        items = value if isinstance(value, tuple) else (value,)
        if any(not isinstance(v, (int, float)) or v <= 0 for v in items):
            shown = list(value) if isinstance(value, tuple) else value
            raise fail(source, f"suite.{key}", f"must be positive, got {shown!r}")
    for key in _NOT_NEGATIVE:
        if getattr(settings, key) < 0:
            raise fail(source, f"suite.{key}", f"must be >= 0, got {getattr(settings, key)!r}")
    for key in ("min_window_s", "idle_baseline_s"):  # a window that never ends
        if getattr(settings, key) > MAX_WINDOW_S:
            raise fail(
                source,
                f"suite.{key}",
                f"must be at most {MAX_WINDOW_S:g} s, got {getattr(settings, key)!r}",
            )
    check_seed(settings.seed, f"{source}: suite.seed")
    if settings.timeline_hz > MAX_TIMELINE_HZ:  # faster only spins the sampler
        raise fail(
            source,
            "suite.timeline_hz",
            f"must be at most {MAX_TIMELINE_HZ:g} (counters update about every ms), "
            f"got {settings.timeline_hz!r}",
        )
    if settings.stable_max_other_cpu_pct > 100:
        raise fail(
            source,
            "suite.stable_max_other_cpu_pct",
            f"a percentage of the CPUs, at most 100, got {settings.stable_max_other_cpu_pct!r}",
        )
    if settings.processes > settings.repetitions:
        raise fail(
            source,
            "suite.processes",
            f"at most `repetitions` ({settings.repetitions}): each process runs whole "
            f"rounds (0: one process per round), got {settings.processes!r}",
        )
    if settings.peer not in (None, "codecarbon"):
        raise fail(source, "suite.peer", f"allowed: codecarbon, got {settings.peer!r}")
    check_precision(settings.precision, f"{source}: suite.precision")
    if len(settings.simulate) > 1 or not all(isinstance(a, str) for a in settings.simulate):
        raise fail(
            source,
            "suite.simulate",
            'give one accelerator name or .toml path, e.g. ["edge-systolic-64"] (cases.csv '
            f"holds one simulated figure per case; `energy-harness simulate` for more), got "
            f"{list(settings.simulate)!r}",
        )
    return settings


def check_carbon(source: str, raw: dict[str, Any]) -> CarbonSpec:
    """The [carbon] table as a CarbonSpec; raises naming the bad key."""
    unknown_keys(source, "carbon", set(raw), set(CARBON_KEYS))
    out = {}
    for key, value in raw.items():
        expected = CARBON_KEYS[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected):
            raise fail(source, f"carbon.{key}", f"expected a {expected.__name__}, got {value!r}")
        if expected is float and not math.isfinite(value):
            raise fail(source, f"carbon.{key}", f"expected a finite number, got {value!r}")
        if key == "pue" and value < 1.0:
            raise fail(source, "carbon.pue", f"must be >= 1.0 (facility / IT energy), got {value}")
        if key == "intensity_g_per_kwh" and value < 0:
            raise fail(source, f"carbon.{key}", f"must be >= 0 g/kWh, got {value}")
        out[key] = value
    if "region" in out and "country" not in out:
        raise fail(source, "carbon.region", 'needs carbon.country (ISO-3), e.g. country = "USA"')
    return CarbonSpec(**out)


def check_training(source: str, raw: dict[str, Any], settings: SuiteSettings) -> dict[str, Any]:
    """The [training] table (optimizer, lr, momentum, weight_decay, epochs) as TrainConfig
    arguments; raises naming the bad key. `epochs` is `suite.train_epochs`: not both."""
    from harness.spec.train_config import TrainConfig

    unknown_keys(source, "training", set(raw), set(TRAINING_KEYS))
    out: dict[str, Any] = {}
    for key, value in raw.items():
        default = {str: "", float: 0.0, int: 0}[TRAINING_KEYS[key]]
        out[key] = _check_type(source, f"training.{key}", value, default)
    if "epochs" in out and settings.train_epochs != _DEFAULTS.train_epochs:
        raise fail(source, "training.epochs", "suite.train_epochs says the same: give one")
    out.setdefault("epochs", settings.train_epochs)
    try:
        TrainConfig(**out)
    except EnergyHarnessError as exc:
        raise fail(source, "training", str(exc).removeprefix("training settings: ")) from None
    return out
