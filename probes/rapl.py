"""Linux powercap RAPL probe (Intel and AMD): CPU package, core, uncore, DRAM and psys.

Reads `energy_uj` files directly (not through pyRAPL). Zones are identified by their
`name` file, not by their number. Where the kernel exposes both the MSR zone
(`intel-rapl:N`) and its MMIO twin (`intel-rapl-mmio:N`) under the same name, the MSR
one is read and the twin skipped, so one counter is never counted twice.

Wraparound: each counter wraps at `max_energy_range_uj`. The probe accumulates deltas
and polls in the background at half the shortest wrap period (range / generous max
power), so windows longer than a wrap period stay right. A counter that goes
backwards when no wrap is possible in the elapsed time is an invalid reading.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError

ENV_ROOT = "ENERGY_HARNESS_POWERCAP_ROOT"
DEFAULT_ROOTS = (Path("/sys/class/powercap"), Path("/sys/devices/virtual/powercap"))
# Generous power ceilings (W) used only to bound wrap polling and to tell a wrap from a
# counter glitch, when the zone states no max power of its own.
DEFAULT_MAX_POWER_W = {"package": 1000.0, "psys": 2000.0, "dram": 500.0, "core": 1000.0}
MAX_POWER_FACTOR = 4.0  # x constraint_0_max_power_uw: turbo can exceed the long-term limit
MIN_POLL_S = 0.005
RAPL_UPDATE_PERIOD_S = 0.001  # RAPL counters update about every 976 us (Intel SDM)

_ZONE_RE = re.compile(r"^intel-rapl(-mmio)?(:\d+)+$")
_CONTROL_RE = re.compile(r"^intel-rapl(-mmio)?$")

PERMISSION_FIX = (
    "RAPL counters are readable by root only since CVE-2020-8694. Ask an administrator to "
    "grant read access, e.g. a udev rule "
    '`ACTION=="add", SUBSYSTEM=="powercap", RUN+="/bin/chmod 0444 /sys%p/energy_uj"` '
    "in /etc/udev/rules.d/, or a line `mode class/powercap/intel-rapl:0/energy_uj = 0444` "
    "in /etc/sysfs.conf (sysfsutils), or run as root. energy-harness never changes "
    "permissions itself."
)


@dataclass
class _Zone:
    """One powercap zone and its accumulator state (guarded by the probe's lock)."""

    zone_id: str  # e.g. "intel-rapl:0:1"
    path: Path
    kind: str  # package, core, uncore, dram, psys
    domain: Domain
    max_range_uj: int
    max_power_w: float
    last_raw_uj: int = 0
    last_t: float = 0.0
    total_uj: int = 0
    invalid: int = 0
    invalid_reason: str = ""


def _read_int(path: Path) -> int:
    """Read an integer sysfs file; retries once on a torn read."""
    for attempt in range(2):
        text = path.read_text().strip()
        try:
            return int(text)
        except ValueError:
            if attempt:
                raise EnergyHarnessError(
                    f"RAPL file {path} holds {text!r}, not an integer; "
                    "check that the powercap root points at a powercap tree"
                ) from None
    raise AssertionError("unreachable")


def resolve_root(option: Path | None) -> Path | None:
    """The powercap root: option, else $ENERGY_HARNESS_POWERCAP_ROOT, else the /sys defaults."""
    if option is not None:
        return Path(option)
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env)
    for root in DEFAULT_ROOTS:
        if root.is_dir():
            return root
    return None


def find_zone_dirs(root: Path) -> dict[str, Path]:
    """Zone id -> directory, for both flat (/sys/class) and nested (/sys/devices) layouts."""
    found: dict[str, Path] = {}

    def visit(directory: Path, depth: int) -> None:
        if depth > 4:
            return
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            return
        for entry in entries:
            if _ZONE_RE.match(entry.name):
                if entry.name not in found and (entry / "name").exists():
                    found[entry.name] = entry
                visit(entry, depth + 1)
            elif _CONTROL_RE.match(entry.name) and entry.is_dir():
                visit(entry, depth + 1)

    visit(root, 0)
    return found


def _package_index(zone_id: str, name: str) -> str:
    """The package number a zone belongs to, from `package-N` or from the zone id."""
    match = re.match(r"package-(\d+)", name)
    if match:
        return match.group(1)
    parts = zone_id.split(":")
    return parts[1] if len(parts) > 1 else "0"


class RaplProbe(Probe):
    """CPU energy from Linux powercap (intel-rapl / intel-rapl-mmio; AMD uses the same tree)."""

    name = "rapl"
    source = SOURCE_COUNTER
    min_window_s = 0.01  # ten counter updates

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self.root = resolve_root(self.options.powercap_root)
        self._zones: list[_Zone] = []
        self._skipped: list[str] = []
        self._reason: str | None = None
        self.poll_interval_s = 0.0
        self._discover()

    # -- discovery -------------------------------------------------------------------
    def _discover(self) -> None:
        if self.root is None or not self.root.is_dir():
            where = self.root or " or ".join(str(r) for r in DEFAULT_ROOTS)
            self._reason = (
                f"no powercap tree at {where}: this machine exposes no RAPL counters (a VM, "
                "or the intel_rapl_msr / intel_rapl_common kernel modules are not loaded); "
                f"point --powercap-root or ${ENV_ROOT} at a powercap tree if it lives elsewhere"
            )
            return
        dirs = find_zone_dirs(self.root)
        if not dirs:
            self._reason = (
                f"no RAPL zones (intel-rapl:*) under {self.root}: the CPU or kernel does not "
                "expose RAPL through powercap (try `modprobe intel_rapl_msr`)"
            )
            return
        try:
            self._zones = self._build_zones(dirs)
        except PermissionError as exc:
            self._reason = f"cannot read {exc.filename}: permission denied. {PERMISSION_FIX}"
        except (OSError, EnergyHarnessError) as exc:
            self._reason = f"cannot read the powercap tree at {self.root}: {exc}"

    def _build_zones(self, dirs: dict[str, Path]) -> list[_Zone]:
        names = {zid: (path / "name").read_text().strip() for zid, path in dirs.items()}
        # MSR zones first, so an MMIO twin with the same name is the one skipped.
        ordered = sorted(dirs, key=lambda z: ("mmio" in z, z.count(":"), z))
        chosen: dict[str, str] = {}  # full zone name -> zone id
        for zid in ordered:
            key = self._zone_key(zid, names)
            if key in chosen:
                self._skipped.append(f"{zid} ({names[zid]}): twin of {chosen[key]}")
                continue
            chosen[key] = zid
        has_psys = any(names[z] == "psys" for z in chosen.values())
        zones = []
        for _key, zid in sorted(chosen.items()):
            kind = names[zid].split("-")[0]
            domain = self._domain_for(zid, names, kind, has_psys)
            if domain is None:
                self._skipped.append(f"{zid} ({names[zid]}): unknown zone name")
                continue
            path = dirs[zid]
            energy_file = path / "energy_uj"
            raw = _read_int(energy_file)  # PermissionError surfaces here
            max_range = _read_int(path / "max_energy_range_uj")
            zones.append(
                _Zone(
                    zone_id=zid,
                    path=energy_file,
                    kind=kind,
                    domain=domain,
                    max_range_uj=max_range,
                    max_power_w=self._max_power_w(path, kind),
                    last_raw_uj=raw,
                    last_t=time.monotonic(),
                )
            )
        if not zones:
            raise EnergyHarnessError("no usable zones (" + "; ".join(self._skipped) + ")")
        return zones

    @staticmethod
    def _zone_key(zid: str, names: dict[str, str]) -> str:
        """A zone's identity by names: `package-0/dram`, `psys` (the same for MMIO twins)."""
        parts = zid.split(":")
        control = parts[0]
        chain = []
        for depth in range(1, len(parts)):
            ancestor = ":".join([control, *parts[1 : depth + 1]])
            chain.append(names.get(ancestor, ancestor))
        return "/".join(chain)

    @staticmethod
    def _domain_for(zid: str, names: dict[str, str], kind: str, has_psys: bool) -> Domain | None:
        name = names[zid]
        parts = zid.split(":")
        top = ":".join(parts[:2])
        pkg = _package_index(top, names.get(top, ""))
        platform_parent = "cpu:psys" if has_psys else None
        if kind == "psys":
            return Domain("cpu:psys", SOURCE_COUNTER, "platform", None, "RAPL psys (platform)")
        if kind == "package":
            return Domain(f"cpu:{name}", SOURCE_COUNTER, "cpu", platform_parent, f"RAPL {zid}")
        if kind in ("core", "uncore"):
            return Domain(
                f"cpu:{kind}-{pkg}", SOURCE_COUNTER, "cpu", f"cpu:package-{pkg}", f"RAPL {zid}"
            )
        if kind == "dram":
            return Domain(f"cpu:dram-{pkg}", SOURCE_COUNTER, "dram", platform_parent, f"RAPL {zid}")
        return None

    def _max_power_w(self, zone_dir: Path, kind: str) -> float:
        if self.options.rapl_max_power_w:
            return float(self.options.rapl_max_power_w)
        limit_file = zone_dir / "constraint_0_max_power_uw"
        try:
            limit_w = _read_int(limit_file) / 1e6
        except (OSError, EnergyHarnessError):
            limit_w = 0.0
        if limit_w > 0:
            return limit_w * MAX_POWER_FACTOR
        return DEFAULT_MAX_POWER_W.get(kind, 1000.0)

    # -- contract --------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        return self._reason

    def domains(self) -> list[Domain]:
        return [z.domain for z in self._zones]

    def wrap_period_s(self) -> float:
        """Shortest time any zone's counter needs to wrap at its generous max power."""
        return min(z.max_range_uj / 1e6 / z.max_power_w for z in self._zones)

    def start(self) -> None:
        if self._reason or self._loop is not None:
            return
        self.poll_interval_s = max(MIN_POLL_S, self.wrap_period_s() / 2)
        self._start_loop("rapl-wrap-poller", self.poll_interval_s, self._poll)

    def _poll(self) -> None:
        try:
            self.read()
        except EnergyHarnessError:
            pass  # the next foreground read reports it

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"rapl probe unavailable: {self._reason}")
        with self._lock:
            for zone in self._zones:
                self._advance(zone)
            now = time.monotonic()
            return Reading(
                timestamp_s=now,
                energy_j={z.domain.name: z.total_uj / 1e6 for z in self._zones},
                invalid_count={z.domain.name: z.invalid for z in self._zones},
                invalid_reason={z.domain.name: z.invalid_reason for z in self._zones if z.invalid},
            )

    def _advance(self, zone: _Zone) -> None:
        """Fold the counter's movement since the last read into the zone's total."""
        try:
            raw = _read_int(zone.path)
        except OSError as exc:
            raise EnergyHarnessError(f"cannot read RAPL counter {zone.path}: {exc}") from exc
        now = time.monotonic()
        elapsed_s = now - zone.last_t
        if raw >= zone.last_raw_uj:
            delta_uj = raw - zone.last_raw_uj
        else:
            delta_uj = raw + zone.max_range_uj - zone.last_raw_uj
            # The most the zone can draw in the elapsed time, plus one counter update.
            possible_uj = zone.max_power_w * (elapsed_s + RAPL_UPDATE_PERIOD_S) * 1e6
            if delta_uj > possible_uj:
                zone.invalid += 1
                zone.invalid_reason = (
                    f"{zone.path} went backwards ({zone.last_raw_uj} -> {raw} uJ) after "
                    f"{elapsed_s:.3f} s, too soon for a wrap of {zone.max_range_uj} uJ at "
                    f"<= {zone.max_power_w:.0f} W"
                )
                delta_uj = 0
        zone.total_uj += delta_uj
        zone.last_raw_uj = raw
        zone.last_t = now

    def info(self) -> dict[str, object]:
        return {
            "root": str(self.root) if self.root else None,
            "zones": {
                z.domain.name: {
                    "zone": z.zone_id,
                    "max_energy_range_uj": z.max_range_uj,
                    "max_power_w_assumed": z.max_power_w,
                }
                for z in self._zones
            },
            "skipped": list(self._skipped),
            "wrap_poll_interval_s": self.poll_interval_s or None,
        }
