"""Shared test fixtures: fake hardware (a powercap tree whose counters advance at a known
power) and the single-thread, digits and model-cache fixtures of the training tests."""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import tempfile
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


def _write_counter(path: Path, value_uj: float, max_range_uj: int) -> None:
    tmp = path.with_name("energy_uj.tmp")
    tmp.write_text(f"{int(value_uj) % max_range_uj}\n")
    os.replace(tmp, path)


def _writer_process(paths, ranges, energy, power, override, stop, period_s) -> None:
    """Advance every counter by power x elapsed time, each `period_s`, until `stop`."""
    try:  # keep the fake hardware on time when the machine is loaded
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, OSError):
        pass
    last = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        for i, path in enumerate(paths):
            if not math.isnan(override[i]):
                energy[i], override[i] = override[i], math.nan
            else:
                energy[i] += power[i] * (now - last) * 1e6
            _write_counter(path, energy[i], ranges[i])
        last = now
        time.sleep(period_s)


class FakePowercap:
    """A powercap tree in a temporary folder whose counters advance at a known power.

    A separate writer process (so it never waits for this process's GIL) rewrites every
    `energy_uj` each millisecond, atomically as sysfs reads are. Layout `flat` mimics
    /sys/class/powercap (every zone at the top level), `nested` mimics
    /sys/devices/virtual/powercap (subzones inside their parent's folder).
    """

    def __init__(self, root: Path, zones: list[FakeZone], layout: str = "flat") -> None:
        self.root = root
        self.zones = zones
        ctx = multiprocessing.get_context("fork")
        for zone in zones:
            zone.path = self._zone_dir(zone.zone_id, layout)
            zone.path.mkdir(parents=True, exist_ok=True)
            (zone.path / "name").write_text(zone.name + "\n")
            (zone.path / "max_energy_range_uj").write_text(f"{zone.max_range_uj}\n")
            if zone.max_power_uw is not None:
                (zone.path / "constraint_0_max_power_uw").write_text(f"{zone.max_power_uw}\n")
            _write_counter(zone.path / "energy_uj", zone.offset_uj, zone.max_range_uj)
        self._energy = ctx.Array("d", [float(z.offset_uj) for z in zones])
        self._power = ctx.Array("d", [z.power_w for z in zones])
        self._override = ctx.Array("d", [math.nan] * len(zones))
        self._stop = ctx.Event()
        self._ctx = ctx
        self._proc = None

    def _zone_dir(self, zone_id: str, layout: str) -> Path:
        if layout == "flat":
            return self.root / zone_id
        control, *numbers = zone_id.split(":")
        path = self.root / control
        for depth in range(1, len(numbers) + 1):
            path = path / ":".join([control, *numbers[:depth]])
        return path

    def _index(self, zone_id: str) -> int:
        return next(i for i, z in enumerate(self.zones) if z.zone_id == zone_id)

    def set_raw(self, zone_id: str, raw_uj: int) -> None:
        """Force a counter to a value and freeze it there (a glitch or reset)."""
        i = self._index(zone_id)
        self._power[i] = 0.0
        self._override[i] = float(raw_uj)
        deadline = time.monotonic() + 2
        while not math.isnan(self._override[i]) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.005)  # the file is written right after the override is taken

    def set_power(self, zone_id: str, power_w: float) -> None:
        self._power[self._index(zone_id)] = power_w

    def start(self, period_s: float = 0.001) -> FakePowercap:
        args = (
            [z.path / "energy_uj" for z in self.zones],
            [z.max_range_uj for z in self.zones],
            self._energy,
            self._power,
            self._override,
            self._stop,
            period_s,
        )
        self._proc = self._ctx.Process(target=_writer_process, args=args, daemon=True)
        self._proc.start()
        time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.join(timeout=5)


def memory_dir(fallback: Path) -> Path:
    """A fresh folder in RAM (/dev/shm) like sysfs, else under `fallback`.

    A fake tree on a disk makes the writer stall on writeback now and then, which would
    look like a counter that stops and jumps.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="fake-powercap-", dir=shm))
    fallback.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=fallback))


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
        tree = FakePowercap(memory_dir(tmp_path), zones, layout).start()
        made.append(tree)
        return tree

    yield make
    for tree in made:
        tree.stop()
        shutil.rmtree(tree.root, ignore_errors=True)


@pytest.fixture(scope="module")
def one_thread():
    """Small models train as fast on one thread, and a loaded machine cannot stall them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    from harness.spec.catalog import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One model cache for the session: the dense LeNet-5 is trained once for all files."""
    from harness.prepare.cache import ModelCache

    return ModelCache(tmp_path_factory.getbasetemp() / "shared-model-cache")
