"""Energy profiles: per-operation energies of a target, each value with its source.

A profile is a TOML file:

    [profile]
    name = "h100-class"
    description = "one line"
    target = "gpu"                  # gpu | cpu | soc | asic
    memory_level = "hbm"            # the [memory.*] level operator traffic is charged to
    host_to_device_inputs = true    # inputs cross a host-to-device link every step
    derivation = "how the numbers below were obtained, and how rough they are"

    [compute.fp32]                  # one table per dtype: fp64 fp32 tf32 fp16 bf16 int32 int8
    pj_per_flop = 10.7
    flops_per_s = 4.69e13           # optional: achievable rate (for a duration estimate)
    source = "where the number comes from"

    [compute.tf32]                  # fp32 tensors on TF32 tensor cores (precision "tf32");
    pj_per_flop = 1.46              # without it, tf32 FLOPs are priced as fp32
    flops_per_s = 3.46e14
    source = "..."

    [memory.hbm]                    # one table per memory level
    pj_per_byte = 104.0
    bytes_per_s = 2.68e12           # optional
    source = "..."

    [communication.host_to_device]  # host_to_device and/or interconnect
    pj_per_byte = 80.0
    bytes_per_s = 5.1e10            # optional
    source = "..."

    [static]
    power_w = 70.0
    source = "..."

    [max_power]                     # optional: the most the target can draw (board power,
    power_w = 700.0                 # TDP); an estimate implying more is capped to it
    source = "..."

    [fit]                           # optional, written by `energy-harness calibrate`
    ...

Built-in profiles live in `harness/estimate/profiles/`; a path to a file works too.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).with_name("profiles")
DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "int32", "int8")
TARGETS = ("gpu", "cpu", "soc", "asic")
CHANNELS = ("host_to_device", "interconnect")
_PROFILE_KEYS = {
    "name": str,
    "description": str,
    "target": str,
    "memory_level": str,
    "host_to_device_inputs": bool,
    "derivation": str,
}
_TOP_KEYS = ("profile", "compute", "memory", "communication", "static", "max_power", "fit")


@dataclass(frozen=True)
class ComputeEnergy:
    """Energy of one FLOP of a dtype (pJ) and, optionally, the achievable FLOP/s."""

    pj_per_flop: float
    source: str
    flops_per_s: float | None = None


@dataclass(frozen=True)
class TransferEnergy:
    """Energy of moving one byte (pJ) through a memory level or link; optional bytes/s."""

    pj_per_byte: float
    source: str
    bytes_per_s: float | None = None


@dataclass(frozen=True)
class StaticPower:
    """Power drawn whatever the work (W): idle power of the target; also used for the
    maximum power a target can draw."""

    power_w: float
    source: str


@dataclass(frozen=True)
class Profile:
    """A target described by its per-operation energies; see the module docstring."""

    name: str
    description: str
    target: str
    memory_level: str
    host_to_device_inputs: bool
    derivation: str
    compute: dict[str, ComputeEnergy]
    memory: dict[str, TransferEnergy]
    communication: dict[str, TransferEnergy]
    static: StaticPower
    fit: dict[str, Any] | None = None
    origin: str = field(default="", compare=False)  # file it was read from
    max_power: StaticPower | None = None  # board power / TDP: the cap on implied power


def builtin_profiles() -> dict[str, Path]:
    """Name -> path of every profile shipped with the harness."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def _known() -> str:
    return ", ".join(builtin_profiles()) or "(none installed)"


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, or a profile file by path.

    Raises EnergyHarnessError for an unknown name (listing the known ones), an
    unreadable file, or invalid content (naming the file and the key).
    """
    text = str(name_or_path)
    builtins = builtin_profiles()
    if text in builtins:
        path = builtins[text]
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise EnergyHarnessError(
                f"unknown profile {text!r}; built-in profiles: {_known()}; "
                "or give the path of a profile .toml file"
            )
    return parse_profile(read_toml(path, "profile"), str(path))


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The parsed TOML file `path`; EnergyHarnessError naming `what` and the file when it
    cannot be read, is not UTF-8 or is not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnergyHarnessError(f"cannot read {what} {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise EnergyHarnessError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "save it as UTF-8 TOML"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise EnergyHarnessError(f"{what} {path} is not valid TOML: {exc}") from exc


def check_profile_setting(source: str, name_or_path: str) -> None:
    """Raise (naming the suite file and key) unless `estimate_profile` is `auto` or a
    profile that loads: checked before anything is measured."""
    if name_or_path == "auto":
        return
    try:
        load_profile(name_or_path)
    except EnergyHarnessError as exc:
        raise EnergyHarnessError(f"{source}: suite.estimate_profile: {exc}") from None


def check_number(origin: str, where: str, key: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EnergyHarnessError(
            f"{origin}: [{where}] {key} must be a finite number, got {value!r}"
        )
    if value < 0 or (positive and value == 0):
        sign = "positive" if positive else "zero or positive"
        raise EnergyHarnessError(f"{origin}: [{where}] {key} must be {sign}, got {value!r}")
    return float(value)


def check_sourced_table(
    origin: str, where: str, table: object, required: tuple[str, ...], optional: tuple[str, ...]
) -> str:
    """The source of a [where] table of values and their `source`, after checking that it is
    a table with every `required` key, no key but those and `optional`, and a source."""
    if not isinstance(table, dict):
        raise EnergyHarnessError(f"{origin}: [{where}] must be a table")
    allowed = {*required, *optional, "source"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise EnergyHarnessError(
            f"{origin}: unknown key {unknown[0]!r} in [{where}]; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    for key in (*required, "source"):
        if key not in table:
            raise EnergyHarnessError(
                f"{origin}: [{where}] lacks {key!r}; every value needs a number and a source"
            )
    source = table["source"]
    if not isinstance(source, str) or not source.strip():
        raise EnergyHarnessError(f"{origin}: [{where}] source must be a non-empty string")
    return source


def _entry(
    origin: str, where: str, table: object, value_key: str, rate_key: str | None
) -> tuple[float, str, float | None]:
    """(value, source, rate) of one [section.name] table, validated."""
    optional = (rate_key,) if rate_key else ()
    source = check_sourced_table(origin, where, table, (value_key,), optional)
    value = check_number(origin, where, value_key, table[value_key], positive=False)
    rate = table.get(rate_key) if rate_key else None
    if rate is not None:
        rate = check_number(origin, where, rate_key, rate, positive=True)
    return value, source, rate


def _section(origin: str, data: dict, name: str, allowed: tuple[str, ...] | None) -> dict:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise EnergyHarnessError(f"{origin}: [{name}] must be a table of tables")
    if allowed is not None:
        for key in section:
            if key not in allowed:
                raise EnergyHarnessError(
                    f"{origin}: unknown key {key!r} in [{name}]; allowed: {', '.join(allowed)}"
                )
    return section


def parse_profile(data: dict[str, Any], origin: str = "<profile>") -> Profile:
    """Validate parsed TOML and build a Profile; errors name `origin` and the key."""
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise EnergyHarnessError(
            f"{origin}: unknown top-level key {unknown[0]!r}; allowed: {', '.join(_TOP_KEYS)}"
        )
    head = data.get("profile")
    if not isinstance(head, dict):
        raise EnergyHarnessError(f"{origin}: missing [profile] table (name, description, ...)")
    for key, kind in _PROFILE_KEYS.items():
        if key not in head:
            raise EnergyHarnessError(f"{origin}: [profile] lacks {key!r}")
        if not isinstance(head[key], kind):
            raise EnergyHarnessError(
                f"{origin}: [profile] {key} must be a {kind.__name__}, got {head[key]!r}"
            )
    extra = sorted(set(head) - set(_PROFILE_KEYS))
    if extra:
        raise EnergyHarnessError(
            f"{origin}: unknown key {extra[0]!r} in [profile]; allowed: {', '.join(_PROFILE_KEYS)}"
        )
    if head["target"] not in TARGETS:
        raise EnergyHarnessError(
            f"{origin}: [profile] target {head['target']!r} is not one of {', '.join(TARGETS)}"
        )
    compute = {}
    for dtype, table in _section(origin, data, "compute", DTYPES).items():
        value, source, rate = _entry(
            origin, f"compute.{dtype}", table, "pj_per_flop", "flops_per_s"
        )
        compute[dtype] = ComputeEnergy(value, source, rate)
    memory = {}
    for level, table in _section(origin, data, "memory", None).items():
        value, source, rate = _entry(origin, f"memory.{level}", table, "pj_per_byte", "bytes_per_s")
        memory[level] = TransferEnergy(value, source, rate)
    comm = {}
    for channel, table in _section(origin, data, "communication", CHANNELS).items():
        where = f"communication.{channel}"
        value, source, rate = _entry(origin, where, table, "pj_per_byte", "bytes_per_s")
        comm[channel] = TransferEnergy(value, source, rate)
    if head["memory_level"] not in memory:
        raise EnergyHarnessError(
            f"{origin}: [profile] memory_level {head['memory_level']!r} has no [memory."
            f"{head['memory_level']}] table; levels defined: {', '.join(memory) or 'none'}"
        )
    if "static" not in data:
        raise EnergyHarnessError(f"{origin}: missing [static] table (power_w and source)")
    power_w, source, _ = _entry(origin, "static", data["static"], "power_w", None)
    max_power = None
    if "max_power" in data:
        max_w, max_source, _ = _entry(origin, "max_power", data["max_power"], "power_w", None)
        if max_w <= power_w:
            raise EnergyHarnessError(
                f"{origin}: [max_power] power_w ({max_w:g} W) must exceed the static power "
                f"({power_w:g} W)"
            )
        max_power = StaticPower(max_w, max_source)
    fit = data.get("fit")
    if fit is not None and not isinstance(fit, dict):
        raise EnergyHarnessError(f"{origin}: [fit] must be a table")
    return Profile(
        name=head["name"],
        description=head["description"],
        target=head["target"],
        memory_level=head["memory_level"],
        host_to_device_inputs=head["host_to_device_inputs"],
        derivation=head["derivation"],
        compute=compute,
        memory=memory,
        communication=comm,
        static=StaticPower(power_w, source),
        fit=fit,
        origin=origin,
        max_power=max_power,
    )


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The TOML structure of a profile (what `parse_profile` reads back)."""

    def entry(value_key: str, value: float, rate_key: str, rate: float | None, source: str):
        out: dict[str, Any] = {value_key: value}
        if rate is not None:
            out[rate_key] = rate
        out["source"] = source
        return out

    data: dict[str, Any] = {
        "profile": {
            "name": profile.name,
            "description": profile.description,
            "target": profile.target,
            "memory_level": profile.memory_level,
            "host_to_device_inputs": profile.host_to_device_inputs,
            "derivation": profile.derivation,
        },
        "compute": {
            k: entry("pj_per_flop", v.pj_per_flop, "flops_per_s", v.flops_per_s, v.source)
            for k, v in profile.compute.items()
        },
        "memory": {
            k: entry("pj_per_byte", v.pj_per_byte, "bytes_per_s", v.bytes_per_s, v.source)
            for k, v in profile.memory.items()
        },
        "communication": {
            k: entry("pj_per_byte", v.pj_per_byte, "bytes_per_s", v.bytes_per_s, v.source)
            for k, v in profile.communication.items()
        },
        "static": {"power_w": profile.static.power_w, "source": profile.static.source},
    }
    if profile.max_power is not None:
        data["max_power"] = {
            "power_w": profile.max_power.power_w,
            "source": profile.max_power.source,
        }
    if profile.fit is not None:
        data["fit"] = profile.fit
    return data


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        if "\n" in value:
            escaped = value.replace("\\", "\\\\").replace('"""', '""\\"')
            return '"""\n' + escaped + '"""'
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _emit(lines: list[str], path: str, table: dict[str, Any]) -> None:
    scalars = {
        k: v
        for k, v in table.items()
        if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))
    }
    if scalars or not path:
        if path:
            lines.append(f"[{path}]")
        lines.extend(f"{_key(k)} = {_toml_value(v)}" for k, v in scalars.items())
        lines.append("")
    for key, value in table.items():
        sub = f"{path}.{_key(key)}" if path else _key(key)
        if isinstance(value, dict):
            _emit(lines, sub, value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"[[{sub}]]")
                lines.extend(f"{_key(k)} = {_toml_value(v)}" for k, v in item.items())
                lines.append("")


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def profile_to_toml(profile: Profile, header: str = "") -> str:
    """TOML text of a profile; `header` becomes leading comment lines."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    if lines:
        lines.append("")
    _emit(lines, "", profile_to_dict(profile))
    return "\n".join(lines).rstrip() + "\n"


def write_profile(profile: Profile, path: str | Path, header: str = "") -> Path:
    """Write a profile TOML file (creating parent folders); returns the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(profile_to_toml(profile, header), encoding="utf-8")
    except OSError as exc:
        raise EnergyHarnessError(
            f"cannot write profile {path}: {exc}; choose another --out"
        ) from exc
    return path
