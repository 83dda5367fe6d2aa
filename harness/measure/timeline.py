"""Power timeline: a background thread reading every probe at a fixed rate, for plots.

Memory stays bounded: the sampler keeps at most `max_points` cumulative readings; when
full it drops every other one and halves its rate. Cumulative readings decimate
exactly, so the power between two kept points is still the true average over that span.
"""

from __future__ import annotations

import csv
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness.errors import EnergyHarnessError
from probes.base import Probe

TIMELINE_COLUMNS = ["time_utc", "elapsed_s", "probe", "domain", "source", "power_w"]


@dataclass(frozen=True)
class PowerPoint:
    """Average power of one domain between the previous point and `elapsed_s`."""

    time_utc: str
    elapsed_s: float
    probe: str
    domain: str
    source: str
    power_w: float  # NaN where the probe flagged the span invalid or failed to read


@dataclass
class _Tick:
    t: float
    energy_j: dict[tuple[str, str], float]
    invalid: dict[tuple[str, str], int]


class PowerTimeline:
    """Samples probes in the background: `with PowerTimeline(probes) as tl: ...`."""

    def __init__(self, probes: list[Probe], rate_hz: float = 10.0, max_points: int = 4096):
        if rate_hz <= 0:
            raise EnergyHarnessError(f"timeline rate must be positive, got {rate_hz} Hz")
        if max_points < 4:
            raise EnergyHarnessError(f"timeline needs at least 4 points, got {max_points}")
        self.probes = probes
        self.interval_s = 1.0 / rate_hz
        self.max_points = max_points
        self._ticks: list[_Tick] = []
        self._sources = {(p.name, d.name): d.source for p in probes for d in p.domains()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._t0 = 0.0
        self._utc0 = datetime.now(timezone.utc)

    def _tick(self) -> None:
        energy: dict[tuple[str, str], float] = {}
        invalid: dict[tuple[str, str], int] = {}
        for probe in self.probes:
            try:
                reading = probe.read()
            except EnergyHarnessError:
                continue  # missing keys make that span NaN
            for dom, value in reading.energy_j.items():
                energy[(probe.name, dom)] = value
                invalid[(probe.name, dom)] = reading.invalid_count.get(dom, 0)
        with self._lock:
            self._ticks.append(_Tick(time.monotonic(), energy, invalid))
            if len(self._ticks) >= self.max_points:
                self._ticks = self._ticks[::2]
                self.interval_s *= 2

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._tick()

    def start(self) -> None:
        """Start sampling (the probes must be started by their owner)."""
        if self._thread is not None:
            return
        self._t0 = time.monotonic()
        self._utc0 = datetime.now(timezone.utc)
        self._tick()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="power-timeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling, taking one last point."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        self._tick()

    def __enter__(self) -> PowerTimeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def points(self) -> list[PowerPoint]:
        """Average power per domain over each span between kept readings."""
        with self._lock:
            ticks = list(self._ticks)
        out = []
        for prev, cur in zip(ticks, ticks[1:], strict=False):
            span_s = cur.t - prev.t
            elapsed_s = cur.t - self._t0
            utc = (self._utc0 + timedelta(seconds=elapsed_s)).isoformat(timespec="milliseconds")
            for key, source in self._sources.items():
                power_w = math.nan
                if key in cur.energy_j and key in prev.energy_j and span_s > 0:
                    delta = cur.energy_j[key] - prev.energy_j[key]
                    if delta >= 0 and cur.invalid.get(key) == prev.invalid.get(key):
                        power_w = delta / span_s
                out.append(PowerPoint(utc, elapsed_s, key[0], key[1], source, power_w))
        return out

    def write_csv(self, path: Path, append: bool = False) -> int:
        """Write the points to `path` (columns TIMELINE_COLUMNS); returns the row count.

        With `append`, rows go after those already in the file (a resumed run).
        """
        points = self.points()
        path = Path(path)
        header = not (append and path.exists() and path.stat().st_size > 0)
        with path.open("a" if append else "w", newline="") as handle:
            writer = csv.writer(handle)
            if header:
                writer.writerow(TIMELINE_COLUMNS)
            for p in points:
                writer.writerow(
                    [p.time_utc, f"{p.elapsed_s:.4f}", p.probe, p.domain, p.source, p.power_w]
                )
        return len(points)
