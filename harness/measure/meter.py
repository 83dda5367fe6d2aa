"""EnergyMeter: measurement windows over a set of probes.

A window is two readings of every probe; energy per domain is their difference. Windows
may nest and overlap (each has its own name). CUDA work is synchronised at both edges
when CUDA is initialised, so queued kernels land in the window that launched them.

Totals add only root domains (no parent), one source per scope, counters before models,
peers never; a `platform` counter (psys) covers `cpu` and `dram`. The total says which
sources it holds (`total_source`), so a modelled part is never passed off as measured.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.errors import EnergyHarnessError
from harness.measure.clock import sync_cuda, utc_now_iso
from harness.measure.sources import SOURCE_RANK, combine_sources
from probes.base import SOURCE_COUNTER, SOURCE_MODEL, Domain, Probe, Reading

_PLATFORM_COVERS = ("cpu", "dram")


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
    return {
        (p, d.name)
        for p, d in roots
        if d.scope in best and best[d.scope] == (SOURCE_RANK[d.source], p)
    }


@dataclass(frozen=True)
class DomainEnergy:
    """Energy of one domain over one window. `energy_j` is None when the reading was invalid."""

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
    start_utc: str
    end_utc: str
    duration_s: float
    domains: tuple[DomainEnergy, ...]
    warnings: tuple[str, ...] = ()

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
            "domains": [d.__dict__.copy() for d in self.domains],
            "warnings": list(self.warnings),
        }


@dataclass
class _Open:
    t0: float
    start_utc: str
    readings: dict[str, Reading | str] = field(default_factory=dict)  # str: read error


class WindowHandle:
    """What `with meter.window(...) as w` yields; `w.measurement` is set on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.measurement: Measurement | None = None


class EnergyMeter:
    """Measurement windows over a set of started probes."""

    def __init__(self, probes: list[Probe]) -> None:
        if not probes:
            raise EnergyHarnessError("EnergyMeter needs at least one probe")
        names = [p.name for p in probes]
        if len(set(names)) != len(names):
            raise EnergyHarnessError(f"probe names must be unique, got {names}")
        self.probes = list(probes)
        self.idle_power_w: dict[str, float] = {}
        self.measurements: list[Measurement] = []
        self._domains = {p.name: p.domains() for p in self.probes}
        pairs = [(p, d) for p, ds in self._domains.items() for d in ds]
        self._in_total = select_total_domains(pairs)
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self._started = False

    @property
    def min_window_s(self) -> float:
        """The longest update period among the probes: shorter windows are warned about."""
        return max(p.min_window_s for p in self.probes)

    def start(self) -> None:
        """Start the probes' background work (done by the first window if not before)."""
        if not self._started:
            for probe in self.probes:
                probe.start()
            self._started = True

    def close(self) -> None:
        """Stop every probe's background work."""
        for probe in self.probes:
            probe.close()
        self._started = False

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_all(self) -> dict[str, Reading | str]:
        out: dict[str, Reading | str] = {}
        for probe in self.probes:
            try:
                out[probe.name] = probe.read()
            except EnergyHarnessError as exc:
                out[probe.name] = str(exc)
        return out

    def _timed_read(self) -> tuple[float, dict[str, Reading | str]]:
        """Read every probe; the time is the middle of the reads (a slow read skews less)."""
        t_before = time.monotonic()
        readings = self._read_all()
        return (t_before + time.monotonic()) / 2, readings

    def begin_window(self, name: str) -> None:
        """Open a window; names of open windows must be unique."""
        self.start()
        with self._lock:
            if name in self._open:
                raise EnergyHarnessError(f"window {name!r} is already open; end it or rename")
            self._open[name] = _Open(0.0, "")
        sync_cuda()
        t_read, readings = self._timed_read()
        with self._lock:
            self._open[name] = _Open(t_read, utc_now_iso(), readings)

    def end_window(self, name: str) -> Measurement:
        """Close a window and return its Measurement (also appended to `measurements`)."""
        sync_cuda()
        t1, end = self._timed_read()
        with self._lock:
            begin = self._open.pop(name, None)
        if begin is None or not begin.start_utc:
            raise EnergyHarnessError(f"window {name!r} was never begun (or already ended)")
        duration_s = t1 - begin.t0
        domains = []
        for probe in self.probes:
            for dom in self._domains[probe.name]:
                domains.append(
                    self._domain_energy(probe.name, dom, begin.readings, end, duration_s)
                )
        warnings = []
        if duration_s < self.min_window_s:
            warnings.append(
                f"window {name!r} lasted {duration_s * 1e3:.1f} ms, shorter than the counters' "
                f"update period ({self.min_window_s * 1e3:.0f} ms): its energy is mostly "
                "quantisation noise; measure more iterations per window"
            )
        measurement = Measurement(
            name, begin.start_utc, utc_now_iso(), duration_s, tuple(domains), tuple(warnings)
        )
        self.measurements.append(measurement)
        return measurement

    def _domain_energy(
        self,
        probe: str,
        dom: Domain,
        begin: dict[str, Reading | str],
        end: dict[str, Reading | str],
        duration_s: float,
    ) -> DomainEnergy:
        r0, r1 = begin.get(probe), end.get(probe)
        energy_j: float | None = None
        reason = ""
        if isinstance(r0, str) or isinstance(r1, str) or r0 is None or r1 is None:
            reason = r0 if isinstance(r0, str) else r1 if isinstance(r1, str) else "no reading"
        elif dom.name not in r0.energy_j or dom.name not in r1.energy_j:
            reason = f"{dom.name} missing from a reading"
        elif r1.invalid_count.get(dom.name, 0) != r0.invalid_count.get(dom.name, 0):
            reason = r1.invalid_reason.get(dom.name, "the probe flagged an invalid reading")
        else:
            delta = r1.energy_j[dom.name] - r0.energy_j[dom.name]
            if delta < 0:
                reason = (
                    f"counter decreased by {-delta:.3f} J (wrapped or reset); "
                    "the window's energy is unknown"
                )
            else:
                energy_j = delta
        idle_w = self.idle_power_w.get(dom.name)
        dynamic = None
        if energy_j is not None and idle_w is not None:
            dynamic = energy_j - idle_w * duration_s
        return DomainEnergy(
            probe=probe,
            domain=dom.name,
            source=dom.source,
            scope=dom.scope,
            energy_j=energy_j,
            in_total=(probe, dom.name) in self._in_total,
            idle_power_w=idle_w,
            dynamic_energy_j=dynamic,
            note=dom.note,
            invalid_reason=reason,
        )

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
