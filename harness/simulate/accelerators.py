"""Accelerator profiles: a systolic array for SCALE-Sim and its energy per access, each
value with its source.

An accelerator is a TOML file (see `accelerators/*.toml`):

    [accelerator]
    name = "edge-systolic-64"
    description = "one line"
    derivation = "how the numbers below were obtained, and how rough they are"

    [array]           rows, cols (PEs), dataflow ("os", "ws" or "is"), source
    [sram]            ifmap_kb, filter_kb, ofmap_kb (on-chip buffers), source
    [dram]            words_per_cycle (off-chip bandwidth), source
    [clock]           hz, source
    [word]            bytes (one element: SCALE-Sim counts words), source
    [energy.mac]      pj (one multiply-accumulate), source
    [energy.sram]     pj_per_byte, source
    [energy.dram]     pj_per_byte, source
    [static]          power_w, source

Built-in accelerators live in `harness/simulate/accelerators/`; a path to a file works too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.estimate.profiles import check_number, check_sourced_table, read_toml

BUILTIN_DIR = Path(__file__).with_name("accelerators")
DATAFLOWS = ("os", "ws", "is")
_TABLES: dict[str, tuple[str, ...]] = {
    "array": ("rows", "cols", "dataflow"),
    "sram": ("ifmap_kb", "filter_kb", "ofmap_kb"),
    "dram": ("words_per_cycle",),
    "clock": ("hz",),
    "word": ("bytes",),
    "energy.mac": ("pj",),
    "energy.sram": ("pj_per_byte",),
    "energy.dram": ("pj_per_byte",),
    "static": ("power_w",),
}
_INTEGERS = ("rows", "cols", "ifmap_kb", "filter_kb", "ofmap_kb", "words_per_cycle", "bytes")


@dataclass(frozen=True)
class Accelerator:
    """A simulated accelerator; `sources` maps each table (`array`, `energy.dram`, ...) to
    the source of its values."""

    name: str
    description: str
    derivation: str
    rows: int
    cols: int
    dataflow: str
    ifmap_kb: int
    filter_kb: int
    ofmap_kb: int
    dram_words_per_cycle: int
    clock_hz: float
    word_bytes: int
    mac_pj: float
    sram_pj_per_byte: float
    dram_pj_per_byte: float
    static_power_w: float
    sources: dict[str, str]
    origin: str = ""

    def simulator_config(self) -> dict[str, Any]:
        """What SCALE-Sim is given (and what a cached result depends on)."""
        return {
            "rows": self.rows,
            "cols": self.cols,
            "dataflow": self.dataflow,
            "ifmap_kb": self.ifmap_kb,
            "filter_kb": self.filter_kb,
            "ofmap_kb": self.ofmap_kb,
            "dram_words_per_cycle": self.dram_words_per_cycle,
        }


def builtin_accelerators() -> dict[str, Path]:
    """Name -> path of every accelerator shipped with the harness."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def load_accelerator(name_or_path: str | Path) -> Accelerator:
    """A built-in accelerator by name, or an accelerator file by path; EnergyHarnessError
    for an unknown name (listing the known ones) or a bad file (naming file and key)."""
    text = str(name_or_path)
    builtins = builtin_accelerators()
    path = builtins.get(text) or Path(text).expanduser()
    if not path.is_file():
        raise EnergyHarnessError(
            f"unknown accelerator {text!r}; built-in accelerators: {', '.join(builtins)}; "
            "or give the path of an accelerator .toml file"
        )
    return parse_accelerator(read_toml(path, "accelerator"), str(path))


def _table(origin: str, data: dict[str, Any], where: str) -> dict[str, Any]:
    table: Any = data
    for part in where.split("."):
        table = table.get(part) if isinstance(table, dict) else None
    if table is None:
        raise EnergyHarnessError(f"{origin}: missing [{where}] table")
    check_sourced_table(origin, where, table, _TABLES[where], ())
    return table


def _value(origin: str, where: str, table: dict[str, Any], key: str) -> float | int | str:
    value = table[key]
    if key == "dataflow":
        if value not in DATAFLOWS:
            raise EnergyHarnessError(
                f"{origin}: [{where}] dataflow must be one of {', '.join(DATAFLOWS)}, got {value!r}"
            )
        return value
    positive = key not in ("power_w",)
    number = check_number(origin, where, key, value, positive=positive)
    if key in _INTEGERS:
        if number != int(number):
            raise EnergyHarnessError(f"{origin}: [{where}] {key} must be a whole number")
        return int(number)
    return number


def parse_accelerator(data: dict[str, Any], origin: str = "<accelerator>") -> Accelerator:
    """Validate parsed TOML and build an Accelerator; errors name `origin` and the key."""
    head = data.get("accelerator")
    if not isinstance(head, dict) or not all(
        isinstance(head.get(k), str) for k in ("name", "description", "derivation")
    ):
        raise EnergyHarnessError(
            f"{origin}: [accelerator] needs name, description and derivation (strings)"
        )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for where, keys in _TABLES.items():
        table = _table(origin, data, where)
        sources[where] = table["source"]
        for key in keys:
            values[f"{where}.{key}"] = _value(origin, where, table, key)
    return Accelerator(
        name=head["name"],
        description=head["description"],
        derivation=head["derivation"],
        rows=values["array.rows"],
        cols=values["array.cols"],
        dataflow=values["array.dataflow"],
        ifmap_kb=values["sram.ifmap_kb"],
        filter_kb=values["sram.filter_kb"],
        ofmap_kb=values["sram.ofmap_kb"],
        dram_words_per_cycle=values["dram.words_per_cycle"],
        clock_hz=values["clock.hz"],
        word_bytes=values["word.bytes"],
        mac_pj=values["energy.mac.pj"],
        sram_pj_per_byte=values["energy.sram.pj_per_byte"],
        dram_pj_per_byte=values["energy.dram.pj_per_byte"],
        static_power_w=values["static.power_w"],
        sources=sources,
        origin=origin,
    )


def check_accelerator_setting(source: str, names: tuple[str, ...]) -> None:
    """Raise (naming the suite file and key) unless every `simulate` accelerator loads
    and SCALE-Sim is installed: checked before anything is measured."""
    if not names:
        return
    for name in names:
        try:
            load_accelerator(name)
        except EnergyHarnessError as exc:
            raise EnergyHarnessError(f"{source}: suite.simulate: {exc}") from None
    import importlib.util

    if importlib.util.find_spec("scalesim") is None:
        raise EnergyHarnessError(
            f"{source}: suite.simulate: SCALE-Sim is not installed; "
            "pip install 'energy-harness[simulate]' or remove the key"
        )
