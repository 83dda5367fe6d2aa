"""Power timeline: a background thread reading every probe at a fixed rate, for plots.

With a `sink` (a run's power_timeline.csv), points are handed to it in chunks as they
come (every `flush_s`), so a process killed without warning loses at most the last
chunk, and memory holds only that chunk. The rate halves after every `max_points`
readings, so a long run's file grows with the logarithm of its length.

Without a sink, memory stays bounded: the sampler keeps at most `max_points` cumulative
readings; when full it drops every other one and halves its rate. Cumulative readings
decimate exactly, so the power between two kept points is still the true average over
that span.

Times are absolute: `time_utc` of each point, and `elapsed_s` since `origin_utc` (a
run's start, so a resumed run continues its clock instead of starting again at 0).
"""

from __future__ import annotations

import csv
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from probes.base import Probe

TIMELINE_COLUMNS = ["time_utc", "elapsed_s", "probe", "domain", "source", "power_w"]


@dataclass(frozen=True)
class PowerPoint:
    """Average power of one domain between the previous point and `elapsed_s`."""

    time_utc: str
    elapsed_s: float  # since the timeline's origin (a run's start)
    probe: str
    domain: str
    source: str
    power_w: float  # NaN where the probe flagged the span invalid or failed to read


@dataclass
class _Tick:
    t: float
    energy_j: dict[tuple[str, str], float]
    invalid: dict[tuple[str, str], int]


PointSink = Callable[[list[PowerPoint]], None]


def timeline_row(p: PowerPoint) -> dict[str, Any]:
    """A point as a power_timeline.csv row (TIMELINE_COLUMNS)."""
    return {
        "time_utc": p.time_utc,
        "elapsed_s": round(p.elapsed_s, 4),
        "probe": p.probe,
        "domain": p.domain,
        "source": p.source,
        "power_w": p.power_w,
    }


class PowerTimeline:
    """Samples probes in the background: `with PowerTimeline(probes) as tl: ...`.

    `sink` receives the points in chunks, from the sampling thread; if it raises, the
    error is kept in `sink_error` and no more points are handed to it (sampling goes on
    in memory). `origin_utc` is the zero of `elapsed_s` (default: when sampling starts).
    """

    def __init__(
        self,
        probes: list[Probe],
        rate_hz: float = 10.0,
        max_points: int = 4096,
        *,
        sink: PointSink | None = None,
        origin_utc: datetime | None = None,
        flush_s: float = 1.0,
    ):
        if not (rate_hz > 0 and math.isfinite(rate_hz)):
            raise EnergyHarnessError(f"timeline rate must be a positive number, got {rate_hz} Hz")
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
        self.origin_utc = origin_utc
        self.sink = sink
        self.sink_error: Exception | None = None
        self.flush_s = flush_s
        self._last_flush = 0.0
        self._readings = 0  # since the rate last halved (with a sink)

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
            if self.sink is not None:
                self._readings += 1
                if self._readings >= self.max_points:
                    self._readings = 0
                    self.interval_s *= 2
            elif len(self._ticks) >= self.max_points:
                self._ticks = self._ticks[::2]
                self.interval_s *= 2

    def flush(self) -> None:
        """Hand the points since the last flush to the sink (kept in `sink_error` if it
        fails); the last reading stays as the start of the next span."""
        with self._lock:
            if self.sink is None or len(self._ticks) < 2:
                return
            ticks, self._ticks = self._ticks, self._ticks[-1:]
            self._last_flush = time.monotonic()
        try:
            self.sink(self._points(ticks))
        except Exception as exc:  # noqa: BLE001 - a failing sink must not stop a run
            self.sink_error, self.sink = exc, None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._tick()
            if self.sink is not None and time.monotonic() - self._last_flush >= self.flush_s:
                self.flush()

    def start(self) -> None:
        """Start sampling (the probes must be started by their owner)."""
        if self._thread is not None:
            return
        self._t0 = self._last_flush = time.monotonic()
        self._utc0 = datetime.now(timezone.utc)
        if self.origin_utc is None:
            self.origin_utc = self._utc0
        self._tick()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="power-timeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling, taking one last point (and handing it to the sink)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        self._tick()
        self.flush()

    def __enter__(self) -> PowerTimeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def points(self) -> list[PowerPoint]:
        """Average power per domain over each span between kept readings (with a sink:
        those not handed to it yet)."""
        with self._lock:
            ticks = list(self._ticks)
        return self._points(ticks)

    def _points(self, ticks: list[_Tick]) -> list[PowerPoint]:
        origin = self.origin_utc or self._utc0
        out = []
        for prev, cur in zip(ticks, ticks[1:], strict=False):
            span_s = cur.t - prev.t
            when = self._utc0 + timedelta(seconds=cur.t - self._t0)
            elapsed_s = (when - origin).total_seconds()
            utc = when.isoformat(timespec="milliseconds")
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
        with path.open("a" if append else "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if header:
                writer.writerow(TIMELINE_COLUMNS)
            for p in points:
                row = timeline_row(p)
                writer.writerow([row[c] for c in TIMELINE_COLUMNS])
        return len(points)
