"""Linux powercap RAPL probe (Intel and AMD): CPU package, core, uncore, DRAM and psys.

Reads `energy_uj` files directly (not through pyRAPL): each is opened once and read with
`os.pread` at offset 0, which makes sysfs print the counter afresh, so one reading costs
one system call per zone. Zones are identified by their `name` file, not their number:
`package-N` (`package-N-die-D` on parts with several dies per package), its `core`,
`uncore` and `dram` subzones, and `psys`. Every zone gets a domain name of its own that
says its package and die (`cpu:package-0-die-1`, `cpu:dram-0-die-1`).

Where the kernel exposes both the MSR zone (`intel-rapl:N`) and its MMIO twin
(`intel-rapl-mmio:N`) under the same name, one of them is read: the MSR one, else the
twin when the MSR one cannot be read; a counter is never counted twice. A zone that
cannot be read (root-only file, no counter file) is left out with a warning that names
the file, the reason and the fix; every other zone is still read.

`energy_uj` is an unsigned counter: a value that is negative or not an integer is an
invalid reading with its reason, never energy, and so is the reading after it.

Wraparound: each counter wraps at `max_energy_range_uj`. The probe accumulates deltas
and polls in the background at half the shortest wrap period (range / generous max
power), so windows longer than a wrap period stay right. The counters that lie
(`probes.tracks`): a counter that goes backwards when no wrap is possible in the elapsed
time was reset and is an invalid reading, as is a jump above the zone's power bound and a
counter that does not move for 500 update periods (a frozen interface, as in some VMs).
A zone whose counter could wrap faster than every 2 x MIN_POLL_S (a range too small for
its power) cannot be followed: each of its readings is invalid, with that reason.

Every file is opened non-blocking and must be a regular file (sysfs files are; see
`probes.powercap`): a FIFO under `--powercap-root` is a zone left out with why, never a
hang.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from probes.base import SOURCE_COUNTER, Domain, Probe, ProbeOptions, Reading
from probes.errors import EnergyHarnessError
from probes.powercap import (  # noqa: F401 - ENV_ROOT: imported from here too
    DEFAULT_ROOTS,
    ENV_ROOT,
    find_zone_dirs,
    open_regular,
    read_int,
    read_text,
    resolve_root,
)
from probes.tracks import CounterTrack, reading

# Generous power ceilings (W) used only to bound wrap polling and to tell a wrap from a
# counter glitch, when the zone states no max power of its own.
DEFAULT_MAX_POWER_W = {"package": 1000.0, "psys": 2000.0, "dram": 500.0, "core": 1000.0}
MAX_POWER_FACTOR = 4.0  # x constraint_0_max_power_uw: turbo can exceed the long-term limit
MIN_POLL_S = 0.005
RAPL_UPDATE_PERIOD_S = 0.001  # RAPL counters update about every 976 us (Intel SDM)
# A counter still after this long (500 updates) is frozen; the uncore zone (an integrated
# GPU on client parts) may rightly rest at 0 W, so it is exempt.
RAPL_FROZEN_AFTER_S = 0.5
MAY_REST = ("uncore",)
READ_BYTES = 32  # an energy_uj line is at most 21 bytes (2^64 - 1 and a newline)


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
    """One powercap zone being read and its counter's state (guarded by the probe's lock)."""

    zone_id: str  # e.g. "intel-rapl:0:1"
    path: Path  # its energy_uj file
    kind: str  # package, core, uncore, dram, psys
    domain: Domain
    max_range_uj: int
    max_power_w: float
    track: CounterTrack
    fd: int = -1  # energy_uj, open for the probe's lifetime (-1: closed)
    too_fast: str = ""  # why the counter wraps too fast to follow ("" when it can be)

    @property
    def wrap_period_s(self) -> float:
        """The shortest time the counter needs to wrap: its range at its max power."""
        return self.max_range_uj / 1e6 / self.max_power_w


@dataclass
class _Found:
    """A zone of the tree: its name, and its open counter or why it cannot be read."""

    zone_id: str
    directory: Path
    name: str
    key: str  # names from the top zone down: `package-0/dram` (the same for MMIO twins)
    fd: int = -1
    max_range_uj: int = 0
    problem: str = ""  # why the counter cannot be read, with the fix ("" when it can)

    @property
    def energy_file(self) -> Path:
        return self.directory / "energy_uj"

    @property
    def mmio(self) -> bool:
        return self.zone_id.startswith("intel-rapl-mmio")


def _top_zone(zone_id: str) -> str:
    """`intel-rapl:0` for `intel-rapl:0:2`: the package (or psys) zone above a subzone."""
    return ":".join(zone_id.split(":")[:2])


def _zone_key(zone_id: str, names: dict[str, str]) -> str:
    """A zone's identity by names: `package-0/dram`, `psys` (the same for MMIO twins)."""
    parts = zone_id.split(":")
    chain = [names.get(":".join(parts[: depth + 1]), "?") for depth in range(1, len(parts))]
    return "/".join(chain)


def _package_suffix(top_id: str, top_name: str) -> str:
    """`0` for package-0, `0-die-1` for package-0-die-1; else the zone's number."""
    if top_name.startswith("package-"):
        return top_name[len("package-") :]
    parts = top_id.split(":")
    return parts[1] if len(parts) > 1 else "0"


def _domain_name(zone_id: str, names: dict[str, str]) -> str | None:
    """`cpu:package-0-die-1`, `cpu:dram-0-die-1`, `cpu:psys`; None for an unknown zone."""
    name = names[zone_id]
    kind = name.split("-")[0]
    if kind in ("psys", "package"):
        return f"cpu:{name}"
    if kind in ("core", "uncore", "dram"):
        top = _top_zone(zone_id)
        return f"cpu:{kind}-{_package_suffix(top, names.get(top, ''))}"
    return None


def _problem(file: Path, zone_id: str, exc: OSError) -> str:
    """Why a counter file cannot be read, and what fixes it."""
    if isinstance(exc, PermissionError):
        return (
            "permission denied (RAPL counters are readable by root only since CVE-2020-8694); "
            f"fix: grant read access, e.g. `mode class/powercap/{zone_id}/energy_uj = 0444` "
            "in /etc/sysfs.conf or a udev rule (README, Permissions), or run as root"
        )
    if isinstance(exc, FileNotFoundError):
        return (
            f"{file.name} does not exist: the kernel or firmware exposes no counter for this "
            "zone; nothing to fix here (a newer kernel or BIOS may expose it)"
        )
    if exc.errno is None:  # ours: not a regular file, said in full
        return str(exc)
    return f"{exc.strerror or exc}; the kernel log (`dmesg | grep -i rapl`) may say why"


def _open_counter(found: _Found) -> None:
    """Open the zone's energy_uj and read it once, or set `found.problem`."""
    limit = found.directory / "max_energy_range_uj"
    try:
        found.max_range_uj = read_int(limit)
        if found.max_range_uj <= 0:
            raise EnergyHarnessError(f"{limit} holds {found.max_range_uj}")
    except (OSError, EnergyHarnessError) as exc:
        found.problem = (
            f"its counter range cannot be read ({exc}): without it a wrap cannot be told "
            "from a glitch"
        )
        return
    try:
        found.fd = open_regular(found.energy_file)
        os.pread(found.fd, READ_BYTES, 0)  # sysfs may refuse the read itself (EIO, ENODATA)
    except OSError as exc:
        if found.fd >= 0:
            os.close(found.fd)
            found.fd = -1
        found.problem = _problem(found.energy_file, found.zone_id, exc)


def _unreadable_warning(pair: list[_Found]) -> str:
    """One line: which zone is left out, which file failed, why and the fix."""
    first = pair[0]
    text = f"rapl: {first.name} ({first.zone_id}) is left out: cannot read "
    text += f"{first.energy_file}: {first.problem}"
    for twin in pair[1:]:
        text += f"; its twin {twin.zone_id} cannot be read either ({twin.problem.split(';')[0]})"
    return text


def _too_fast(zone: _Zone) -> str:
    """Why the zone's counter cannot be followed (it may wrap twice between two polls at
    the fastest polling this probe keeps up), or ""."""
    if zone.wrap_period_s >= 2 * MIN_POLL_S:
        return ""
    return (
        f"its counter wraps at {zone.max_range_uj} uJ (max_energy_range_uj), every "
        f"{zone.wrap_period_s * 1e3:.2g} ms at up to {zone.max_power_w:.0f} W: faster than "
        f"the {MIN_POLL_S * 1e3:.0f} ms polling can follow, so its readings are invalid "
        "(a range this small is a driver or firmware fault)"
    )


def _close_fd(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


class RaplProbe(Probe):
    """CPU energy from Linux powercap (intel-rapl / intel-rapl-mmio; AMD uses the same tree)."""

    name = "rapl"
    source = SOURCE_COUNTER
    min_window_s = 0.01  # ten counter updates

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self.root = resolve_root(self.options.powercap_root)
        self._zones: list[_Zone] = []
        self._tracks: dict[str, CounterTrack] = {}
        self._skipped: list[str] = []
        self._warnings: list[str] = []
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
        found = self._find(dirs)
        chosen = self._pick_twins(found)
        self._zones = self._build_zones(chosen, {f.zone_id: f.name for f in found})
        self._tracks = {z.domain.name: z.track for z in self._zones}
        if not self._zones:
            self._reason = self._no_zone_reason(found)

    def _find(self, dirs: dict[str, Path]) -> list[_Found]:
        """Every zone with a readable name, its counter opened (or why it cannot be)."""
        names: dict[str, str] = {}
        for zone_id, directory in dirs.items():
            try:
                names[zone_id] = read_text(directory / "name").strip()
            except OSError as exc:
                self._warnings.append(f"rapl: {zone_id} is left out: cannot read its name ({exc})")
        found = []
        # MSR zones first and parents before children, so twins and skips read naturally
        for zone_id in sorted(names, key=lambda z: ("mmio" in z, z.count(":"), z)):
            item = _Found(zone_id, dirs[zone_id], names[zone_id], _zone_key(zone_id, names))
            _open_counter(item)
            found.append(item)
        return found

    def _pick_twins(self, found: list[_Found]) -> list[_Found]:
        """One zone per MSR/MMIO twin pair: the first readable one; warn where neither is."""
        groups: dict[str, tuple[list[_Found], list[_Found]]] = {}
        for item in found:
            groups.setdefault(item.key, ([], []))[item.mmio].append(item)
        chosen = []
        for msr, mmio in groups.values():
            for i in range(max(len(msr), len(mmio))):
                pair = [side[i] for side in (msr, mmio) if i < len(side)]
                readable = [z for z in pair if not z.problem]
                if not readable:
                    self._warnings.append(_unreadable_warning(pair))
                    continue
                keep = readable[0]
                chosen.append(keep)
                for other in pair:
                    if other is keep:
                        continue
                    why = "cannot be read, so its twin" if other.problem else "twin of"
                    self._skipped.append(f"{other.zone_id} ({other.name}): {why} {keep.zone_id}")
                    _close_fd(other.fd)
        return chosen

    def _build_zones(self, chosen: list[_Found], names: dict[str, str]) -> list[_Zone]:
        """Zones with unique domain names; parents named after the zones that hold them."""
        base = {f.zone_id: _domain_name(f.zone_id, names) for f in chosen}
        counts = Counter(n for n in base.values() if n is not None)
        unique = {z: n if counts[n] == 1 else f"{n}@{z}" for z, n in base.items() if n}
        has_psys = any(f.name == "psys" for f in chosen)
        zones = []
        now = time.monotonic()
        for f in chosen:
            if f.zone_id not in unique:
                self._skipped.append(f"{f.zone_id} ({f.name}): unknown zone name")
                _close_fd(f.fd)
                continue
            kind = f.name.split("-")[0]
            domain = self._domain(f, kind, unique, names, has_psys)
            max_power_w = self._max_power_w(f.directory, kind)
            track = CounterTrack(
                str(f.energy_file),
                unit_j=1e-6,
                range_units=f.max_range_uj,
                max_power_w=max_power_w,
                update_period_s=RAPL_UPDATE_PERIOD_S,
                frozen_after_s=None if kind in MAY_REST else RAPL_FROZEN_AFTER_S,
            )
            zone = _Zone(f.zone_id, f.energy_file, kind, domain, f.max_range_uj, max_power_w, track)
            zone.fd = f.fd
            zone.too_fast = _too_fast(zone)
            if zone.too_fast:
                self._warnings.append(f"rapl: {f.name} ({f.zone_id}): {zone.too_fast}")
            self._advance(zone, now)  # the first reading: the base of the zone's total
            zones.append(zone)
        return sorted(zones, key=lambda z: z.domain.name)

    @staticmethod
    def _domain(
        f: _Found, kind: str, unique: dict[str, str], names: dict[str, str], has_psys: bool
    ) -> Domain:
        """psys holds package and dram; package holds core and uncore (read or not)."""
        parent = "cpu:psys" if has_psys and kind in ("package", "dram") else None
        if kind in ("core", "uncore"):
            top = _top_zone(f.zone_id)
            parent = unique.get(top) or f"cpu:{names.get(top, top)}"
        scope = {"psys": "platform", "dram": "dram"}.get(kind, "cpu")
        note = "RAPL psys (platform)" if kind == "psys" else f"RAPL {f.zone_id}"
        return Domain(unique[f.zone_id], SOURCE_COUNTER, scope, parent, note)

    def _no_zone_reason(self, found: list[_Found]) -> str:
        denied = [f for f in found if f.problem.startswith("permission denied")]
        if denied:
            return f"cannot read {denied[0].energy_file}: permission denied. {PERMISSION_FIX}"
        details = "; ".join(self._warnings + self._skipped) or "no zone has a known name"
        return f"no readable RAPL zone under {self.root} ({details})"

    def _max_power_w(self, zone_dir: Path, kind: str) -> float:
        if self.options.rapl_max_power_w:
            return float(self.options.rapl_max_power_w)
        limit_file = zone_dir / "constraint_0_max_power_uw"
        try:
            limit_w = read_int(limit_file) / 1e6
        except (OSError, EnergyHarnessError):
            limit_w = 0.0
        if limit_w > 0:
            return limit_w * MAX_POWER_FACTOR
        return DEFAULT_MAX_POWER_W.get(kind, 1000.0)

    # -- contract --------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        return self._reason

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def domains(self) -> list[Domain]:
        return [z.domain for z in self._zones]

    def wrap_period_s(self) -> float:
        """Shortest time a counter that can be followed needs to wrap at its generous max
        power (zones that wrap too fast are invalid anyway and do not set the pace)."""
        return min((z.wrap_period_s for z in self._zones if not z.too_fast), default=math.inf)

    def start(self) -> None:
        if self._reason or self._loop is not None:
            return
        wrap_s = self.wrap_period_s()  # infinite when no zone can be followed
        self.poll_interval_s = max(MIN_POLL_S, wrap_s / 2) if math.isfinite(wrap_s) else 1.0
        self._start_loop("rapl-wrap-poller", self.poll_interval_s, self.read)

    def close(self) -> None:
        """Stop wrap polling and close the counter files (the next read reopens them)."""
        super().close()
        with self._lock:
            for zone in self._zones:
                _close_fd(zone.fd)
                zone.fd = -1

    def read(self) -> Reading:
        if self._reason:
            raise EnergyHarnessError(f"rapl probe unavailable: {self._reason}")
        with self._lock:
            zones = self._zones
            now = time.monotonic()
            for zone in zones:
                self._advance(zone, now)
            energy = {z.domain.name: z.track.energy_j for z in zones}
            return reading(now, energy, self._tracks)

    @staticmethod
    def _bad_value(zone: _Zone, data: bytes) -> str:
        return (
            f"{zone.path} read {data.decode(errors='replace').strip()!r}, not an unsigned "
            "integer: energy_uj is an unsigned counter, so this reading is invalid"
        )

    def _advance(self, zone: _Zone, now: float) -> None:
        """Fold the counter's movement since the last read into the zone's total."""
        if zone.too_fast:
            zone.track.fail(zone.too_fast)
            return
        try:
            if zone.fd < 0:
                zone.fd = open_regular(zone.path)
            data = os.pread(zone.fd, READ_BYTES, 0)
            raw = int(data)
        except OSError as exc:
            zone.track.fail(f"cannot read {zone.path}: {exc.strerror or exc}")
            return
        except ValueError:
            raw = -1
        if raw < 0:
            zone.track.fail(self._bad_value(zone, data))
            return
        zone.track.advance(raw, now)

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
            "warnings": list(self._warnings),
            "wrap_poll_interval_s": self.poll_interval_s or None,
        }
