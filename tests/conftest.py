"""Fake hardware shared by the tests: a powercap tree whose counters advance at a known power."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class FakeZone:
    """One fake RAPL zone: its counter is `offset + power x time`, modulo `max_range_uj`."""

    zone_id: str
    name: str
    power_w: float
    max_range_uj: int = 262_143_328_850
    offset_uj: int = 0
    max_power_uw: int | None = None
    path: Path | None = None
    energy_uj: float = 0.0


class FakePowercap:
    """A powercap tree in a temporary folder whose counters advance at a known power.

    A writer thread rewrites every `energy_uj` each millisecond (atomically, as sysfs
    reads are), so a reading lags the true counter by about a millisecond. Layout `flat`
    mimics /sys/class/powercap (every zone at the top level), `nested` mimics
    /sys/devices/virtual/powercap (subzones inside their parent's folder).
    """

    def __init__(self, root: Path, zones: list[FakeZone], layout: str = "flat") -> None:
        self.root = root
        self.zones = zones
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = time.monotonic()
        for zone in zones:
            zone.path = self._zone_dir(zone.zone_id, layout)
            zone.path.mkdir(parents=True, exist_ok=True)
            (zone.path / "name").write_text(zone.name + "\n")
            (zone.path / "max_energy_range_uj").write_text(f"{zone.max_range_uj}\n")
            if zone.max_power_uw is not None:
                (zone.path / "constraint_0_max_power_uw").write_text(f"{zone.max_power_uw}\n")
            zone.energy_uj = float(zone.offset_uj)
            self._write(zone)

    def _zone_dir(self, zone_id: str, layout: str) -> Path:
        if layout == "flat":
            return self.root / zone_id
        control, *numbers = zone_id.split(":")
        path = self.root / control
        for depth in range(1, len(numbers) + 1):
            path = path / ":".join([control, *numbers[:depth]])
        return path

    def _write(self, zone: FakeZone) -> None:
        tmp = zone.path / "energy_uj.tmp"
        tmp.write_text(f"{int(zone.energy_uj) % zone.max_range_uj}\n")
        os.replace(tmp, zone.path / "energy_uj")

    def advance(self) -> None:
        """Move every counter forward by power x elapsed time."""
        with self._lock:
            now = time.monotonic()
            for zone in self.zones:
                zone.energy_uj += zone.power_w * (now - self._last) * 1e6
                self._write(zone)
            self._last = now

    def set_raw(self, zone_id: str, raw_uj: int) -> None:
        """Force a counter to a value and freeze it there (a glitch or reset)."""
        self.advance()
        with self._lock:
            zone = next(z for z in self.zones if z.zone_id == zone_id)
            zone.energy_uj, zone.power_w = float(raw_uj), 0.0
            self._write(zone)

    def set_power(self, zone_id: str, power_w: float) -> None:
        self.advance()
        with self._lock:
            next(z for z in self.zones if z.zone_id == zone_id).power_w = power_w

    def start(self, period_s: float = 0.001) -> FakePowercap:
        self._last = time.monotonic()

        def run() -> None:
            try:  # keep the fake hardware on time when the machine is loaded
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            except (AttributeError, OSError):
                pass
            while not self._stop.wait(period_s):
                self.advance()

        self._thread = threading.Thread(target=run, name="fake-powercap", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


INTEL_ZONES = [
    ("intel-rapl:0", "package-0", 20.0),
    ("intel-rapl:0:0", "core", 12.0),
    ("intel-rapl:0:1", "uncore", 3.0),
    ("intel-rapl:0:2", "dram", 5.0),
]


@pytest.fixture
def fake_powercap(tmp_path):
    """Factory: fake_powercap(zones=[FakeZone...], layout="flat") -> started FakePowercap."""
    made: list[FakePowercap] = []

    def make(zones: list[FakeZone] | None = None, layout: str = "flat") -> FakePowercap:
        zones = zones or [FakeZone(z, n, p) for z, n, p in INTEL_ZONES]
        root = tmp_path / f"powercap{len(made)}"
        root.mkdir()
        tree = FakePowercap(root, zones, layout).start()
        made.append(tree)
        return tree

    yield make
    for tree in made:
        tree.stop()
