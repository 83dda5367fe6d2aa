"""Shared test fixtures: fake hardware (a powercap tree whose counters advance at a known
power) and the single-thread, digits and model-cache fixtures of the training tests."""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
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
    counter: bool = True  # False: the zone has no energy_uj file
    path: Path | None = None
    energy_uj: float = 0.0


COUNTER_WIDTH = 20  # every write has the same length, so a rewrite in place leaves no tail


def counter_bytes(text: str) -> bytes:
    """A counter file's content: `text` padded to a fixed width (int() ignores the blanks)."""
    return (text.rjust(COUNTER_WIDTH) + "\n").encode()


def counter_text(value_uj: float, max_range_uj: int) -> str:
    """A counter value as the kernel prints it: wrapped at the range (a forced negative stays)."""
    value = int(value_uj)
    return str(value % max_range_uj if value >= 0 else value)


def _writer_process(paths, ranges, energy, power, override, frozen, stop, period_s) -> None:
    """Advance every counter by power x elapsed time, each `period_s`, until `stop`.

    Each file is rewritten in place (one descriptor, pwrite at offset 0), as sysfs keeps
    one file whose content changes: a reader may keep its descriptor open and pread it.
    """
    try:  # keep the fake hardware on time when the machine is loaded
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, OSError):
        pass
    fds = [os.open(path, os.O_WRONLY) if path.exists() else -1 for path in paths]
    last = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        for i, fd in enumerate(fds):
            if frozen[i] or fd < 0:
                continue
            if not math.isnan(override[i]):
                energy[i], override[i] = override[i], math.nan
            else:
                energy[i] += power[i] * (now - last) * 1e6
            os.pwrite(fd, counter_bytes(counter_text(energy[i], ranges[i])), 0)
        last = now
        time.sleep(period_s)
    for fd in fds:
        if fd >= 0:
            os.close(fd)


class FakePowercap:
    """A powercap tree in a temporary folder whose counters advance at a known power.

    A separate writer process (so it never waits for this process's GIL) rewrites every
    `energy_uj` in place each millisecond, with a fixed width. Layout `flat` mimics
    /sys/class/powercap (every zone at the top level), `nested` mimics
    /sys/devices/virtual/powercap (subzones inside their parent's folder).
    """

    def __init__(self, root: Path, zones: list[FakeZone], layout: str = "flat") -> None:
        self.root = root
        self.zones = zones
        root.chmod(0o755)  # an unprivileged reader (see `run_unprivileged`) may enter
        ctx = multiprocessing.get_context("fork")
        for zone in zones:
            zone.path = self._zone_dir(zone.zone_id, layout)
            zone.path.mkdir(parents=True, exist_ok=True)
            (zone.path / "name").write_text(zone.name + "\n")
            (zone.path / "max_energy_range_uj").write_text(f"{zone.max_range_uj}\n")
            if zone.max_power_uw is not None:
                (zone.path / "constraint_0_max_power_uw").write_text(f"{zone.max_power_uw}\n")
            if zone.counter:
                counter = counter_bytes(counter_text(zone.offset_uj, zone.max_range_uj))
                (zone.path / "energy_uj").write_bytes(counter)
        self._energy = ctx.Array("d", [float(z.offset_uj) for z in zones])
        self._power = ctx.Array("d", [z.power_w for z in zones])
        self._override = ctx.Array("d", [math.nan] * len(zones))
        self._frozen = ctx.Array("b", [0] * len(zones))
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
        self._frozen[i] = 0
        deadline = time.monotonic() + 2
        while not math.isnan(self._override[i]) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.005)  # the file is written right after the override is taken

    def set_text(self, zone_id: str, text: str) -> None:
        """Stop a counter and make its file hold `text` (what a broken driver might print)."""
        i = self._index(zone_id)
        self._frozen[i] = 1
        time.sleep(0.005)  # a write the writer had begun is over
        zone = self.zones[i]
        fd = os.open(zone.path / "energy_uj", os.O_WRONLY)
        try:
            os.pwrite(fd, counter_bytes(text), 0)
        finally:
            os.close(fd)

    def set_power(self, zone_id: str, power_w: float) -> None:
        i = self._index(zone_id)
        self._power[i] = power_w
        self._frozen[i] = 0

    def start(self, period_s: float = 0.001) -> FakePowercap:
        args = (
            [z.path / "energy_uj" for z in self.zones],
            [z.max_range_uj for z in self.zones],
            self._energy,
            self._power,
            self._override,
            self._frozen,
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


def sleep_window(probe, seconds: float):
    """The Measurement of one window of `seconds` over an available probe."""
    from harness.measure.meter import EnergyMeter

    assert probe.unavailable_reason() is None, probe.unavailable_reason()
    with EnergyMeter([probe]) as meter:
        with meter.window("w") as w:
            time.sleep(seconds)
    return w.measurement


@pytest.fixture
def sysfs(tmp_path):
    """Factory: sysfs(static, live) -> a FakeSysfs tree (tests/fake_sysfs.py), in RAM."""
    from fake_sysfs import FakeSysfs  # it builds on this module's writer

    made = []

    def make(static: dict, live: dict) -> FakeSysfs:
        made.append(FakeSysfs(memory_dir(tmp_path), static, live))
        return made[-1]

    yield make
    for tree in made:
        tree.stop()


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


NOBODY = 65534


def run_unprivileged(func, *args):
    """`func(*args)` in a forked child that obeys file permissions; returns its result.

    Root reads any file whatever its mode, so as root the child first becomes user nobody;
    a file of mode 0000 then answers EACCES as a root-only sysfs file does to a user. The
    child imports nothing new (nobody may not read the interpreter's files): import what
    `func` needs before calling this. The result travels back pickled.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            payload = pickle.dumps(("ok", func(*args)))
        except BaseException as exc:  # reported by the parent
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        os.write(write_fd, payload)
        os.close(write_fd)
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    status, value = pickle.loads(b"".join(chunks))
    if status != "ok":
        raise AssertionError(f"in the unprivileged child: {value}")
    return value
