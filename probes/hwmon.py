"""Energy and power from Linux hwmon (`/sys/class/hwmon`), where powercap is absent.

Devices are chosen by their `name` file:

- `amd_energy` / `zenergy` (AMD EPYC/Ryzen): `energy{N}_input`, cumulative microjoules,
  labelled `Esocket{K}` per socket (read, `cpu:socket-K`) and `Ecore{NNN}` per core (parts
  of a socket, left out). A socket the `rapl` probe reads too (its powercap zone
  `package-K`) is left out here: a package is never read twice.
- `power_meter` (ACPI power meters; NVIDIA Grace and GH200 expose theirs this way):
  `power{N}_average` or `power{N}_input`, microwatts, sampled and integrated. On Grace the
  sensor's `power{N}_oem_info` says what it covers (NVIDIA's Grace tuning guide): `Module
  Power Socket K` (the whole module, `node:module-K`) holds `Grace Power Socket K`
  (`cpu:grace-K`: CPU, memory, SysIO), which holds `CPU Power Socket K` (`cpu:cpu-K`) and
  `SysIO Power Socket K` (`cpu:sysio-K`); parts are shown, never added to what holds them.
  A power meter without that label measures the machine (`node:power-meter-N`).

Counters are under the counter rules of `probes.tracks` (wrap at 2^64 uJ, reset, impossible
jump, frozen); power samples above a physical bound are invalid. The sysfs root is
settable for tests (`ProbeOptions.sysfs_root`, $ENERGY_HARNESS_SYSFS_ROOT).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError
from probes.rapl import find_zone_dirs, resolve_root
from probes.sysfs import SysfsNumber, read_text, resolve_sysfs_root
from probes.tracks import CounterTrack, PowerTrack, reading

ENERGY_DEVICES = ("amd_energy", "zenergy")
POWER_METER = "power_meter"
ENERGY_UPDATE_PERIOD_S = 0.001  # amd_energy reads the SMU's counters afresh
ENERGY_FROZEN_AFTER_S = 2.0
ENERGY_RANGE_UJ = 2**64
SOCKET_MAX_POWER_W = 1000.0  # generous bounds per kind
NODE_MAX_POWER_W = 20000.0
DEFAULT_AVERAGE_PERIOD_S = 1.0  # an ACPI power meter that states no averaging interval
MIN_SAMPLE_S = 0.01
GRACE_KINDS = {"Module": "module", "Grace": "grace", "CPU": "cpu", "SysIO": "sysio"}
GRACE_PARENT = {"grace": "module", "cpu": "grace", "sysio": "grace"}

PERMISSION_FIX = (
    "hwmon energy files are readable by root only (amd_energy since CVE-2020-12912); ask an "
    "administrator for a udev rule that makes them 0444, e.g. "
    '`ACTION=="add", SUBSYSTEM=="hwmon", RUN+="/bin/sh -c \'chmod 0444 /sys%p/energy*_input\'"`'
    ", or run as root"
)


@dataclass
class _Sensor:
    domain: Domain
    number: SysfsNumber
    track: CounterTrack | PowerTrack
    period_s: float


def _rapl_packages(powercap_root: Path | None) -> set[int]:
    """Package numbers the rapl probe reads through powercap (none without a tree)."""
    root = resolve_root(powercap_root)
    if root is None or not root.is_dir():
        return set()
    found = set()
    for directory in find_zone_dirs(root).values():
        match = re.fullmatch(r"package-(\d+)", read_text(directory / "name"))
        if match and (directory / "energy_uj").is_file():
            found.add(int(match.group(1)))
    return found


class HwmonProbe(Probe):
    """CPU socket energy counters and ACPI/Grace power meters from hwmon."""

    name = "hwmon"
    source = SOURCE_COUNTER

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self.root = resolve_sysfs_root(self.options.sysfs_root) / "class" / "hwmon"
        self._sensors: list[_Sensor] = []
        self._skipped: list[str] = []
        self._warnings: list[str] = []
        self._denied: list[Path] = []
        self.min_window_s = 0.01
        self._reason = self._discover()

    # -- discovery -------------------------------------------------------------------
    def _discover(self) -> str | None:
        if not self.root.is_dir():
            return f"no hwmon tree at {self.root}: this kernel exposes no hardware monitors"
        for device in sorted(self.root.iterdir()):
            name = read_text(device / "name")
            if name in ENERGY_DEVICES:
                self._energy_device(device, name)
            elif name == POWER_METER:
                self._power_meter(device)
        if self._sensors:
            self._sensors.sort(key=lambda s: s.domain.name)
            power_periods = [s.period_s for s in self._sensors if isinstance(s.track, PowerTrack)]
            self.min_window_s = max([0.01, *power_periods])
            return None
        if self._denied:
            return f"cannot read {self._denied[0]}: permission denied. {PERMISSION_FIX}"
        if self._skipped:
            return "no hwmon sensor left to read: " + "; ".join(self._skipped)
        return (
            f"no hwmon device under {self.root} is one this probe reads "
            f"({', '.join(ENERGY_DEVICES)}, {POWER_METER}): on AMD load `amd_energy`; "
            "elsewhere the CPU or board exposes no energy or power sensor"
        )

    def _usable(self, number: SysfsNumber) -> bool:
        """Whether the file can be read; a refusal is remembered for the reason."""
        try:
            number.read()
            return True
        except PermissionError:
            self._denied.append(number.path)
        except (OSError, ValueError) as exc:
            self._warnings.append(f"hwmon: {number.path} is left out: {exc}")
        return False

    def _energy_device(self, device: Path, name: str) -> None:
        on_rapl = _rapl_packages(self.options.powercap_root)
        cores = 0
        for path in sorted(device.glob("energy*_input")):
            index = path.name[len("energy") : -len("_input")]
            label = read_text(device / f"energy{index}_label")
            match = re.fullmatch(r"Esocket(\d+)", label)
            if not match:
                cores += label.startswith("Ecore")
                continue
            socket = int(match.group(1))
            if socket in on_rapl:
                self._skipped.append(
                    f"{path} ({label}): read by the rapl probe as package-{socket}"
                )
                continue
            number = SysfsNumber(path)
            if not self._usable(number):
                continue
            domain = Domain(f"cpu:socket-{socket}", SOURCE_COUNTER, "cpu", None, f"{name} {label}")
            track = CounterTrack(
                str(path),
                unit_j=1e-6,
                range_units=ENERGY_RANGE_UJ,
                max_power_w=SOCKET_MAX_POWER_W,
                update_period_s=ENERGY_UPDATE_PERIOD_S,
                frozen_after_s=ENERGY_FROZEN_AFTER_S,
            )
            self._sensors.append(_Sensor(domain, number, track, ENERGY_UPDATE_PERIOD_S))
        if cores:
            self._skipped.append(f"{device}: {cores} per-core counters (parts of their socket)")

    def _power_meter(self, device: Path) -> None:
        folders = [device, device / "device"]
        found: dict[str, tuple[Path, str, float]] = {}  # kind-K -> file, oem label, period
        for folder in folders:
            for path in sorted(folder.glob("power*_average")) + sorted(folder.glob("power*_input")):
                index = re.sub(r"\D", "", path.name.split("_")[0])
                oem = read_text(folder / f"power{index}_oem_info")
                match = re.match(r"(Module|Grace|CPU|SysIO) Power Socket (\d+)", oem)
                key = f"{GRACE_KINDS[match[1]]}-{match[2]}" if match else f"meter-{device.name}"
                interval_ms = read_text(folder / f"power{index}_average_interval")
                period_s = int(interval_ms) / 1e3 if interval_ms.isdigit() else None
                found.setdefault(key, (path, oem, period_s or DEFAULT_AVERAGE_PERIOD_S))
        for key, (path, oem, period_s) in found.items():
            number = SysfsNumber(path)
            if self._usable(number):
                domain = self._meter_domain(key, oem, set(found), device)
                label = f"{path} ({oem or 'power meter'})"
                limit_w = SOCKET_MAX_POWER_W * 4 if domain.scope != "node" else NODE_MAX_POWER_W
                track = PowerTrack(label, max_power_w=limit_w)
                self._sensors.append(_Sensor(domain, number, track, period_s))

    @staticmethod
    def _meter_domain(key: str, oem: str, keys: set[str], device: Path) -> Domain:
        """Grace's sensors nest (module > grace > cpu, sysio); a plain meter is the node."""
        kind, _, socket = key.partition("-")
        if kind == "meter":
            note = f"ACPI power meter {device.name}: the machine's power (sampled)"
            return Domain(f"node:power-meter-{device.name}", SOURCE_COUNTER, "node", None, note)
        names = {"module": "node:module", "grace": "cpu:grace", "cpu": "cpu:cpu"}
        name = f"{names.get(kind, 'cpu:' + kind)}-{socket}"
        parent_kind = GRACE_PARENT.get(kind)
        while parent_kind and f"{parent_kind}-{socket}" not in keys:
            parent_kind = GRACE_PARENT.get(parent_kind)
        parent = f"{names[parent_kind]}-{socket}" if parent_kind else None
        scope = {"module": "node", "grace": "platform"}.get(kind, "cpu")
        return Domain(name, SOURCE_COUNTER, scope, parent, f"{oem} (sampled)")

    # -- contract --------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        return self._reason

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def domains(self) -> list[Domain]:
        return [s.domain for s in self._sensors]

    def _sample_interval_s(self) -> float:
        periods = [s.period_s for s in self._sensors if isinstance(s.track, PowerTrack)]
        fastest = min([1.0 / max(self.options.sample_hz, 0.1), *(p / 2 for p in periods)])
        return max(MIN_SAMPLE_S, fastest)

    def start(self) -> None:
        if self._reason or self._loop is not None:
            return
        self._update(counters=True)
        if any(isinstance(s.track, PowerTrack) for s in self._sensors):
            self._start_loop("hwmon-power", self._sample_interval_s(), self._update)

    def close(self) -> None:
        super().close()
        with self._lock:
            for sensor in self._sensors:
                sensor.number.close()

    def _update(self, counters: bool = False) -> None:
        """Read the power sensors (and, if asked, the counters) into their tracks."""
        with self._lock:
            now = time.monotonic()
            for sensor in self._sensors:
                if counters or isinstance(sensor.track, PowerTrack):
                    self._read_sensor(sensor, now)

    @staticmethod
    def _read_sensor(sensor: _Sensor, now: float) -> None:
        try:
            value = sensor.number.read()
        except (OSError, ValueError) as exc:
            sensor.track.fail(f"cannot read {sensor.number.path}: {exc}")
            return
        if isinstance(sensor.track, PowerTrack):
            sensor.track.add(value * 1e-6, now)
        else:
            sensor.track.advance(value, now)

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"hwmon probe unavailable: {self._reason}")
        with self._lock:
            now = time.monotonic()
            for sensor in self._sensors:
                self._read_sensor(sensor, now)
            energy = {s.domain.name: s.track.energy_j for s in self._sensors}
            return reading(now, energy, {s.domain.name: s.track for s in self._sensors})

    def info(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "sensors": {
                s.domain.name: {"file": str(s.number.path), "update_period_s": s.period_s}
                for s in self._sensors
            },
            "skipped": list(self._skipped),
            "sample_interval_s": self._sample_interval_s() if self._sensors else None,
        }
