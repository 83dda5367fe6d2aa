"""The probe contract: cumulative joules per domain, a monotonic timestamp, a source label.

A probe reads energy; it never keeps measurement windows (the meter subtracts readings).
Probes are discovered through the entry-point group `energy_harness.probes`; each entry
point names a `Probe` subclass, which is constructed with a `ProbeOptions`.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

SOURCE_COUNTER = "counter"  # a hardware counter or sensor read by this tool
SOURCE_MODEL = "model"  # a modelled figure (assumptions recorded in the domain note)
SOURCE_PEER = "peer"  # another tool's figure, for cross-checks; never added to totals
SOURCES = (SOURCE_COUNTER, SOURCE_MODEL, SOURCE_PEER)


@dataclass(frozen=True)
class ProbeOptions:
    """Options every probe receives; a probe uses the ones that concern it."""

    powercap_root: Path | None = None  # RAPL: powercap tree (else env, else /sys defaults)
    pid: int | None = None  # model: root of the measured process tree (default: this process)
    sample_hz: float = 20.0  # power-sampling probes: sampling rate
    rapl_max_power_w: float | None = None  # RAPL: generous max power per zone (wrap polling)
    sysfs_root: Path | None = None  # jetson, hwmon: sysfs tree (else env, else /sys)


@dataclass(frozen=True)
class Domain:
    """One energy domain.

    `scope` says what hardware the domain covers ("cpu", "dram", "platform", "gpu:0",
    "node"): the meter adds only root domains (no `parent`), one source per scope, a
    "platform" root covers "cpu" and "dram", and a "node" root (the whole machine) covers
    every other scope. `parent` names a domain of the same probe that already includes
    this one (core inside package, package inside psys, a rail inside the board input).
    """

    name: str
    source: str
    scope: str
    parent: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Reading:
    """Cumulative energy per domain at `timestamp_s` (time.monotonic()).

    `invalid_count` is cumulative per domain too: if it differs between two readings,
    the energy between them is not trustworthy and `invalid_reason` says why.
    """

    timestamp_s: float
    energy_j: dict[str, float]
    invalid_count: dict[str, int] = field(default_factory=dict)
    invalid_reason: dict[str, str] = field(default_factory=dict)


class Probe(abc.ABC):
    """Base class of every probe. Subclasses set `name` and `source`.

    Lifecycle: construct (cheap, never raises for missing hardware), check
    `unavailable_reason()`, then `start()`, `read()` as often as needed (thread-safe),
    `close()`.
    """

    name: ClassVar[str]
    source: ClassVar[str]
    default: ClassVar[bool] = True  # used when the user names no probe
    min_window_s: float = 0.0  # shortest window the counter can resolve (update period)
    # learns while it runs (a BMC's update period): its domain notes and min_window_s change
    learns: ClassVar[bool] = False

    def __init__(self, options: ProbeOptions | None = None) -> None:
        self.options = options or ProbeOptions()
        self._lock = threading.Lock()
        self._loop: threading.Thread | None = None
        self._loop_stop = threading.Event()

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when usable, else a sentence saying why not and what the user can do."""

    def warnings(self) -> list[str]:
        """Problems the user should hear about: a part the probe leaves out while it runs
        (a zone it cannot read), or why it is skipped where the user will not expect it
        (a GPU hidden by a MIG selector). One line each, with the fix; [] when none."""
        return []

    @abc.abstractmethod
    def domains(self) -> list[Domain]:
        """The domains this probe reports (valid once available)."""

    @abc.abstractmethod
    def read(self) -> Reading:
        """Cumulative joules per domain now. Raises EnergyHarnessError on a failed read."""

    def start(self) -> None:  # noqa: B027 (optional hook)
        """Start background work (wrap polling, power sampling). Idempotent."""

    def close(self) -> None:
        """Stop background work. Idempotent."""
        if self._loop is not None:
            self._loop_stop.set()
            self._loop.join(timeout=5)
            self._loop = None

    def _start_loop(self, name: str, interval_s: float, tick: Callable[[], None]) -> None:
        """Call `tick` every `interval_s` seconds in a daemon thread until `close()`."""
        if self._loop is not None:
            return
        self._loop_stop.clear()

        def run() -> None:
            while not self._loop_stop.wait(interval_s):
                tick()

        self._loop = threading.Thread(target=run, name=name, daemon=True)
        self._loop.start()

    def info(self) -> dict[str, object]:
        """Facts and assumptions for the environment record (JSON-serialisable)."""
        return {}

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
