"""NVIDIA Jetson (Orin, Xavier, Nano, TX2): per-rail power from the INA3221 power monitors.

A Jetson has no NVML energy; its INA3221 monitors measure each power rail, exposed through
sysfs in one of two layouts (NVIDIA's L4T power guides; Zeus reads both):

- hwmon (newer kernels, L4T 34+): `in{N}_label` (the rail), `curr{N}_input` (mA) and
  `in{N}_input` (mV), power = current x voltage; `update_interval` (ms) when stated.
  Found as `class/hwmon/*` named `ina3221` and `bus/i2c/drivers/ina3221/*/hwmon/hwmon*`.
- iio (older kernels, L4T 32): `rail_name_{N}`, `in_power{N}_input` (mW), or
  `in_current{N}_input` (mA) x `in_voltage{N}_input` (mV) where power is missing.
  Found as `bus/i2c/drivers/ina3221x/*/iio:device*`.

Domains are named after the rails (`soc:VDD_GPU_SOC`, `soc:VDD_CPU_CV`, ...). The board's
input rail (`VDD_IN`, `POM_5V_IN`) is the board's total (scope `platform`) and the other
rails are parts of it: shown, never added to it. Without an input rail (AGX Xavier, AGX
Orin) the rails are added, with a warning that they may leave parts of the board out.

Rails are sampled at twice their update rate (at least `sample_hz`) and integrated; a
sample above 500 W on any rail is an impossible reading. The sysfs root is settable for
tests (`ProbeOptions.sysfs_root`, $ENERGY_HARNESS_SYSFS_ROOT).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError
from probes.sysfs import SysfsNumber, read_text, resolve_sysfs_root
from probes.tracks import PowerTrack, reading

RAIL_MAX_POWER_W = 500.0
DEFAULT_UPDATE_PERIOD_S = 0.05  # INA3221 as L4T configures it: a few ms per channel x averaging
MIN_SAMPLE_S = 0.005
_INPUT_RAIL = re.compile(r"(^|_)IN$")


@dataclass
class _Rail:
    name: str
    files: tuple[SysfsNumber, ...]  # power (mW), or current (mA) and voltage (mV)
    period_s: float
    where: Path
    track: PowerTrack | None = None

    def power_w(self) -> float:
        values = [number.read() for number in self.files]
        if len(values) == 1:
            return values[0] / 1e3
        return values[0] * values[1] / 1e6

    def close(self) -> None:
        for number in self.files:
            number.close()


def _hwmon_devices(root: Path) -> list[Path]:
    """INA3221 hwmon folders, each once (class/hwmon links to the i2c device's folder)."""
    candidates = [
        d for d in sorted(root.glob("class/hwmon/*")) if read_text(d / "name") == "ina3221"
    ]
    candidates += sorted(root.glob("bus/i2c/drivers/ina3221/*/hwmon/hwmon*"))
    unique: dict[Path, Path] = {}
    for folder in candidates:
        unique.setdefault(folder.resolve(), folder)
    return list(unique.values())


def _period_s(folder: Path) -> float:
    """The monitor's `update_interval` (ms) where it states one, else the assumed period."""
    interval_ms = read_text(folder / "update_interval")
    if interval_ms.isdigit() and int(interval_ms) > 0:
        return int(interval_ms) / 1e3
    return DEFAULT_UPDATE_PERIOD_S


def _hwmon_rails(folder: Path) -> list[_Rail]:
    rails = []
    period_s = _period_s(folder)
    for label in sorted(folder.glob("in*_label")):
        index = label.name[2 : -len("_label")]
        files = (folder / f"curr{index}_input", folder / f"in{index}_input")
        if all(f.is_file() for f in files):
            name = read_text(label)
            rails.append(_Rail(name, tuple(SysfsNumber(f) for f in files), period_s, folder))
    return rails


def _iio_rails(folder: Path) -> list[_Rail]:
    rails = []
    for label in sorted(folder.glob("rail_name_*")):
        index = label.name[len("rail_name_") :]
        power = folder / f"in_power{index}_input"
        pair = (folder / f"in_current{index}_input", folder / f"in_voltage{index}_input")
        files = (power,) if power.is_file() else pair
        if all(f.is_file() for f in files):
            name = read_text(label)
            numbers = tuple(SysfsNumber(f) for f in files)
            rails.append(_Rail(name, numbers, DEFAULT_UPDATE_PERIOD_S, folder))
    return rails


class JetsonProbe(Probe):
    """Power per INA3221 rail, sampled and integrated; the board input rail is the total."""

    name = "jetson"
    source = SOURCE_COUNTER

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self.root = resolve_sysfs_root(self.options.sysfs_root)
        self._rails: list[_Rail] = []
        self._warnings: list[str] = []
        self._skipped: list[str] = []
        self.layout = ""
        self._reason = self._discover()
        periods = [r.period_s for r in self._rails]
        self.min_window_s = max(periods) if periods else DEFAULT_UPDATE_PERIOD_S

    def _discover(self) -> str | None:
        hwmon = [r for d in _hwmon_devices(self.root) for r in _hwmon_rails(d)]
        iio = [
            r
            for d in sorted(self.root.glob("bus/i2c/drivers/ina3221x/*/iio:device*"))
            for r in _iio_rails(d)
        ]
        self.layout = "hwmon" if hwmon else "iio" if iio else ""
        for rail in hwmon or iio:
            if not rail.name or rail.name.upper() == "NC" or "sum" in rail.name.lower():
                self._skipped.append(f"{rail.where}: channel {rail.name or '(unnamed)'!r}")
                continue
            try:
                rail.power_w()
            except (OSError, ValueError) as exc:
                self._warnings.append(f"jetson: rail {rail.name} is left out: {exc}")
                continue
            self._rails.append(rail)
        if self._rails:
            if not self._input_rail():
                self._warnings.append(
                    "jetson: no board input rail (VDD_IN): the total is the sum of the rails "
                    f"({', '.join(r.name for r in self._rails)}), which may leave parts of "
                    "the board out"
                )
            return None
        if self._warnings:
            return "no INA3221 rail can be read: " + "; ".join(self._warnings)
        return (
            f"no INA3221 power monitor under {self.root} (bus/i2c/drivers/ina3221*, "
            "class/hwmon): not a Jetson, or its power monitor driver is not loaded; point "
            "$ENERGY_HARNESS_SYSFS_ROOT at the sysfs tree if it lives elsewhere"
        )

    def _input_rail(self) -> _Rail | None:
        return next((r for r in self._rails if _INPUT_RAIL.search(r.name.upper())), None)

    # -- contract --------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        return self._reason

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def domains(self) -> list[Domain]:
        total = self._input_rail()
        out = []
        for rail in self._rails:
            name = f"soc:{rail.name}"
            note = f"INA3221 rail {rail.name} ({self.layout}), sampled"
            if rail is total:
                out.append(Domain(name, SOURCE_COUNTER, "platform", None, note + "; board input"))
            elif total is not None:
                out.append(Domain(name, SOURCE_COUNTER, "soc", f"soc:{total.name}", note))
            else:
                out.append(Domain(name, SOURCE_COUNTER, name, None, note))
        return out

    def sample_interval_s(self) -> float:
        fastest = min(
            [1.0 / max(self.options.sample_hz, 0.1), *(r.period_s / 2 for r in self._rails)]
        )
        return max(MIN_SAMPLE_S, fastest)

    def start(self) -> None:
        if self._reason or self._loop is not None:
            return
        self._sample()
        self._start_loop("jetson-rails", self.sample_interval_s(), self._sample)

    def close(self) -> None:
        super().close()
        with self._lock:
            for rail in self._rails:
                rail.close()

    def _sample(self) -> None:
        with self._lock:
            self._sample_locked(time.monotonic())

    def _sample_locked(self, now: float) -> None:
        for rail in self._rails:
            if rail.track is None:
                rail.track = PowerTrack(f"rail {rail.name}", max_power_w=RAIL_MAX_POWER_W)
            try:
                rail.track.add(rail.power_w(), now)
            except (OSError, ValueError) as exc:
                rail.track.fail(f"cannot read rail {rail.name} ({rail.where}): {exc}")

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"jetson probe unavailable: {self._reason}")
        with self._lock:
            now = time.monotonic()
            self._sample_locked(now)
            tracks = {f"soc:{r.name}": r.track for r in self._rails if r.track is not None}
            energy = {name: t.energy_j for name, t in tracks.items()}
            return reading(now, energy, tracks)  # type: ignore[arg-type]

    def info(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "layout": self.layout,
            "rails": {
                r.name: {"folder": str(r.where), "update_period_s": r.period_s} for r in self._rails
            },
            "skipped": list(self._skipped),
            "sample_interval_s": self.sample_interval_s() if self._rails else None,
        }
