"""EnergyMeter: measurement windows over a set of probes.

A window is two readings of every probe; energy per domain is their difference. Windows
may nest and overlap (each has its own name). CUDA work is synchronised at both edges
when CUDA is initialised, so queued kernels land in the window that launched them.

Totals add only root domains (no parent), one source per scope, counters before models,
peers never; a `platform` counter (psys, a board's input rail) covers `cpu` and `dram`,
and a `node` counter (the whole machine at the wall, from its BMC) covers every other
scope: the parts are shown beside it, never added to it. The total says which
sources it holds (`total_source`), so a modelled part is never passed off as measured.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from harness.errors import EnergyHarnessError, HarnessWarning, warn_user
from harness.measure.clock import sync_cuda, utc_iso
from harness.measure.co2 import co2_g
from harness.measure.load import LoadSample, MachineLoad
from harness.measure.sources import SOURCE_RANK, combine_sources
from probes.base import SOURCE_COUNTER, SOURCE_MODEL, Domain, Probe, Reading

_PLATFORM_COVERS = ("cpu", "dram")
NODE_SCOPE = "node"  # the whole machine: covers every other scope


class ShortWindowWarning(HarnessWarning):
    """A window shorter than the counters' update period: its energy is mostly noise.

    Emitted through `warnings` (filter it like any warning) and kept in
    `Measurement.warnings`."""


def select_total_domains(domains: list[tuple[str, Domain]]) -> set[tuple[str, str]]:
    """The (probe, domain) pairs that a total adds, so nothing is counted twice."""
    roots = [(p, d) for p, d in domains if d.parent is None and d.source in SOURCE_RANK]
    best: dict[str, tuple[int, str]] = {}  # scope -> (rank, probe)
    for probe, dom in roots:
        candidate = (SOURCE_RANK[dom.source], probe)
        if dom.scope not in best or candidate[0] < best[dom.scope][0]:
            best[dom.scope] = candidate
    platform = best.get("platform")
    if platform is not None:
        for scope in _PLATFORM_COVERS:
            if scope in best and best[scope][0] >= platform[0]:
                del best[scope]
    node = best.get(NODE_SCOPE)
    if node is not None:
        for scope in [s for s in best if s != NODE_SCOPE]:
            if best[scope][0] >= node[0]:
                del best[scope]
    return {
        (p, d.name)
        for p, d in roots
        if d.scope in best and best[d.scope] == (SOURCE_RANK[d.source], p)
    }


def _already_open(name: str) -> EnergyHarnessError:
    return EnergyHarnessError(f"window {name!r} is already open; end it or rename")


def _window_energy(name: str, r0: Reading | str, r1: Reading | str) -> tuple[float | None, str]:
    """Energy of one domain between two readings of its probe, or None and why not."""
    if isinstance(r0, str):
        return None, r0  # the probe's read failed: its error
    if isinstance(r1, str):
        return None, r1
    e0, e1 = r0.energy_j.get(name), r1.energy_j.get(name)
    if e0 is None or e1 is None:
        return None, f"{name} missing from a reading"
    if r1.invalid_count.get(name, 0) != r0.invalid_count.get(name, 0):
        return None, r1.invalid_reason.get(name, "the probe flagged an invalid reading")
    if e1 < e0:
        return None, (
            f"counter decreased by {e0 - e1:.3f} J (wrapped or reset); "
            "the window's energy is unknown"
        )
    return e1 - e0, ""


class DomainEnergy(NamedTuple):
    """Energy of one domain over one window. `energy_j` is None when the reading was invalid.

    Immutable; a NamedTuple rather than a frozen dataclass because every window builds
    one per domain and a NamedTuple is about four times cheaper to build.
    """

    probe: str
    domain: str
    source: str
    scope: str
    energy_j: float | None
    in_total: bool
    idle_power_w: float | None = None
    dynamic_energy_j: float | None = None  # energy above idle power x duration
    note: str = ""
    invalid_reason: str = ""


@dataclass(frozen=True)
class Measurement:
    """The result of one window: duration, energy per domain with its source, and totals."""

    name: str
    start_time_s: float  # time.time() at the window's edges (UTC seconds since the epoch)
    end_time_s: float
    duration_s: float
    domains: tuple[DomainEnergy, ...]
    warnings: tuple[str, ...] = ()
    other_cpu_pct: float | None = None  # CPU use outside the measured tree (harness.measure.load)
    update_period_s: float = 0.0  # the counters' longest update period when it closed

    @property
    def below_update_period(self) -> bool:
        """Shorter than the counters' update period: its energy is mostly quantisation noise."""
        return self.duration_s < self.update_period_s

    @property
    def start_utc(self) -> str:
        """When the window began, UTC ISO-8601."""
        return utc_iso(self.start_time_s)

    @property
    def end_utc(self) -> str:
        """When the window ended, UTC ISO-8601."""
        return utc_iso(self.end_time_s)

    def _total(self, attr: str, sources: tuple[str, ...]) -> float:
        values = [getattr(d, attr) for d in self.domains if d.in_total and d.source in sources]
        if any(v is None for v in values):
            return float("nan")
        return float(sum(values))

    @property
    def total_energy_j(self) -> float:
        """Sum of the total domains (NaN if one of them is invalid)."""
        return self._total("energy_j", (SOURCE_COUNTER, SOURCE_MODEL))

    @property
    def measured_energy_j(self) -> float:
        """The part of the total read from hardware counters."""
        return self._total("energy_j", (SOURCE_COUNTER,))

    @property
    def modelled_energy_j(self) -> float:
        """The part of the total that is modelled."""
        return self._total("energy_j", (SOURCE_MODEL,))

    @property
    def total_source(self) -> str:
        """`counter`, `model` or `counter+model`: what the total is made of."""
        return combine_sources(d.source for d in self.domains if d.in_total)

    @property
    def dynamic_energy_j(self) -> float | None:
        """Total energy above the idle baseline, or None without a baseline."""
        if any(d.in_total and d.idle_power_w is None for d in self.domains):
            return None
        return self._total("dynamic_energy_j", (SOURCE_COUNTER, SOURCE_MODEL))

    @property
    def average_power_w(self) -> float:
        """Total energy / duration (NaN for a zero-length window)."""
        return self.total_energy_j / self.duration_s if self.duration_s > 0 else float("nan")

    def co2_g(self, intensity: float | Any, pue: float | None = None) -> float:
        """Grams CO2eq of the total: `intensity` in g/kWh, or a carbon setting (anything
        with `intensity_g_per_kwh` and `pue`, as `harness.rows.carbon.carbon_settings`
        gives). `pue` defaults to the setting's, else 1.0."""
        if isinstance(intensity, int | float):
            return co2_g(self.total_energy_j, float(intensity), 1.0 if pue is None else pue)
        return co2_g(
            self.total_energy_j,
            intensity.intensity_g_per_kwh,
            intensity.pue if pue is None else pue,
        )

    def energy_of(self, domain: str) -> float | None:
        """Energy of one domain by name; raises KeyError if absent."""
        for d in self.domains:
            if d.domain == domain:
                return d.energy_j
        raise KeyError(domain)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "start_utc": self.start_utc,
            "end_utc": self.end_utc,
            "duration_s": self.duration_s,
            "total_energy_j": self.total_energy_j,
            "total_source": self.total_source,
            "average_power_w": self.average_power_w,
            "dynamic_energy_j": self.dynamic_energy_j,
            "domains": [d._asdict() for d in self.domains],
            "warnings": list(self.warnings),
            "other_cpu_pct": self.other_cpu_pct,
        }


Readings = list[Reading | str]  # per probe, in the meter's order: its Reading or read error


@dataclass
class _Open:
    t0: float  # monotonic, the middle of the reads
    start_time_s: float  # time.time()
    readings: Readings
    load: LoadSample | None


@dataclass(frozen=True)
class _Slot:
    """One domain as the meter computes it: where its readings are, and what it is."""

    index: int  # the probe's position in the meter
    probe: str
    domain: Domain
    in_total: bool


class WindowHandle:
    """What `with meter.window(...) as w` yields; `w.measurement` is set on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.measurement: Measurement | None = None


class EnergyMeter:
    """Measurement windows over a set of started probes.

    `tree_pid`: the root of the measured process tree, for `other_cpu_pct` (how busy
    the rest of the machine was; default: this process and its descendants).
    """

    def __init__(self, probes: list[Probe], *, tree_pid: int | None = None) -> None:
        if not probes:
            raise EnergyHarnessError("EnergyMeter needs at least one probe")
        names = [p.name for p in probes]
        if len(set(names)) != len(names):
            raise EnergyHarnessError(f"probe names must be unique, got {names}")
        self.probes = list(probes)
        self.idle_power_w: dict[str, float] = {}
        self.measurements: list[Measurement] = []
        self.load = MachineLoad(tree_pid)
        domains = [(i, p.name, d) for i, p in enumerate(self.probes) for d in p.domains()]
        in_total = select_total_domains([(p, d) for _, p, d in domains])
        self._slots = [_Slot(i, p, d, (p, d.name) in in_total) for i, p, d in domains]
        self._learning = [p for p in self.probes if p.learns]
        self._fixed_min_window_s = max([p.min_window_s for p in self.probes if not p.learns] or [0])
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self._started = False
        # what a probe found only once started (an energy counter that failed its check)
        self.started_warnings: tuple[str, ...] = ()

    @property
    def min_window_s(self) -> float:
        """The longest update period among the probes: shorter windows are warned about.

        Asked afresh of a probe that learns its period while it runs (a BMC)."""
        if not self._learning:
            return self._fixed_min_window_s
        return max(self._fixed_min_window_s, *(p.min_window_s for p in self._learning))

    def start(self) -> None:
        """Start the probes' background work (done by the first window if not before)."""
        if not self._started:
            before = {w for probe in self.probes for w in probe.warnings()}
            for probe in self.probes:
                probe.start()
            self.load.start()
            self._started = True
            self.started_warnings = tuple(
                w for probe in self.probes for w in probe.warnings() if w not in before
            )

    def close(self) -> None:
        """Stop every probe's background work."""
        for probe in self.probes:
            probe.close()
        self.load.close()
        self._started = False

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _timed_read(self) -> tuple[float, Readings]:
        """Read every probe; the time is the middle of the reads (a slow read skews less)."""
        t_before = time.monotonic()
        readings: Readings = []
        for probe in self.probes:
            try:
                readings.append(probe.read())
            except EnergyHarnessError as exc:
                readings.append(str(exc))
        return (t_before + time.monotonic()) / 2, readings

    def begin_window(self, name: str) -> None:
        """Open a window; names of open windows must be unique."""
        if not self._started:
            self.start()
        if name in self._open:  # said before reading; checked again under the lock
            raise _already_open(name)
        sync_cuda()
        t_read, readings = self._timed_read()
        opened = _Open(t_read, time.time(), readings, self.load.sample())
        with self._lock:
            if name in self._open:
                raise _already_open(name)
            self._open[name] = opened

    def end_window(self, name: str) -> Measurement:
        """Close a window and return its Measurement (also appended to `measurements`)."""
        sync_cuda()
        t1, end = self._timed_read()
        load = self.load.sample()
        with self._lock:
            begin = self._open.pop(name, None)
        if begin is None:
            raise EnergyHarnessError(f"window {name!r} was never begun (or already ended)")
        duration_s = t1 - begin.t0
        domains = self._domain_energies(begin.readings, end, duration_s)
        notes: tuple[str, ...] = ()
        min_window_s = self.min_window_s
        if duration_s < min_window_s:
            notes = (
                f"window {name!r} lasted {duration_s * 1e3:.1f} ms, shorter than the counters' "
                f"update period ({min_window_s * 1e3:.0f} ms): its energy is mostly "
                "quantisation noise; measure more iterations per window",
            )
            warn_user(ShortWindowWarning(notes[0]))  # at the user's line, not ours
        measurement = Measurement(
            name,
            begin.start_time_s,
            time.time(),
            duration_s,
            domains,
            notes,
            self.load.other_cpu_pct(begin.load, load),
            min_window_s,
        )
        self.measurements.append(measurement)
        return measurement

    def _domain_energies(
        self, begin: Readings, end: Readings, duration_s: float
    ) -> tuple[DomainEnergy, ...]:
        """Each domain's energy over the window, above idle where a baseline exists."""
        out = []
        live = {(p.name, d.name): d.note for p in self._learning for d in p.domains()}
        for slot in self._slots:
            dom = slot.domain
            energy_j, reason = _window_energy(dom.name, begin[slot.index], end[slot.index])
            idle_w = self.idle_power_w.get(dom.name)
            dynamic = None
            if energy_j is not None and idle_w is not None:
                dynamic = energy_j - idle_w * duration_s
            out.append(
                DomainEnergy(
                    slot.probe,
                    dom.name,
                    dom.source,
                    dom.scope,
                    energy_j,
                    slot.in_total,
                    idle_w,
                    dynamic,
                    live.get((slot.probe, dom.name), dom.note),
                    reason,
                )
            )
        return tuple(out)

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[WindowHandle]:
        """`with meter.window("x") as w: ...`; then `w.measurement`. Ends even on error."""
        handle = WindowHandle(name)
        self.begin_window(name)
        try:
            yield handle
        finally:
            handle.measurement = self.end_window(name)

    def measured(self, name: str | None = None) -> Callable:
        """Decorator: each call runs in a window; results land in `meter.measurements`."""

        def decorate(func: Callable) -> Callable:
            label = name or func.__qualname__

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.window(label):
                    return func(*args, **kwargs)

            return wrapper

        return decorate

    def measure_idle(self, seconds: float) -> dict[str, float]:
        """Idle power per domain (W) over `seconds` of sleep; later windows get dynamic energy."""
        if seconds <= 0:
            raise EnergyHarnessError(f"idle baseline needs a positive duration, got {seconds} s")
        with self.window("idle-baseline") as w:
            time.sleep(seconds)
        m = w.measurement
        assert m is not None
        self.measurements.remove(m)
        self.idle_power_w = {
            d.domain: d.energy_j / m.duration_s for d in m.domains if d.energy_j is not None
        }
        return dict(self.idle_power_w)
