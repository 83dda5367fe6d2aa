"""Phases: named spans (an epoch, an evaluation) that measured code marks itself.

`with phase("epoch-1"):` tells whoever measures this process where the span begins and
ends:

- a parent `energy-harness measure` names a channel in `ENERGY_HARNESS_PHASE_FD`: the
  write end of a pipe it created, inherited by the command. Each edge is one line
  (`B` or `E`, pid, name) written with one `os.write`, atomic under PIPE_BUF, so
  processes sharing the pipe never interleave; the parent reads the counters when the
  line arrives (tens of microseconds later). A pipe needs no path and no clean-up, and
  the parent sees end-of-file when every holder has exited; a parent gone makes the
  write fail (EPIPE), and the phase goes silent.
- a tracker in this process (`harness.integrations`) registers itself as a listener.

With neither, a phase is one check of two module globals: it costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.measure.meter import EnergyMeter, Measurement

PHASE_FD_ENV = "ENERGY_HARNESS_PHASE_FD"
_MAX_NAME = 200  # a line stays well under PIPE_BUF (4096 bytes on Linux)


class PhaseListener(Protocol):
    """A phase's edges, in this process (a tracker)."""

    def begin_phase(self, name: str, samples: int | None) -> Any: ...

    def end_phase(self, token: Any) -> None: ...


_listeners: list[PhaseListener] = []
_fd: int | None = None
_fd_read = False


def add_listener(listener: PhaseListener) -> None:
    """Hear every phase of this process until `remove_listener`."""
    _listeners.append(listener)


def remove_listener(listener: PhaseListener) -> None:
    with contextlib.suppress(ValueError):
        _listeners.remove(listener)


def _channel() -> int | None:
    """The parent's pipe (read once from the environment), or None."""
    global _fd, _fd_read
    if not _fd_read:
        _fd_read = True
        text = os.environ.get(PHASE_FD_ENV, "")
        _fd = int(text) if text.isdigit() else None
    return _fd


def _send(edge: str, name: str) -> None:
    global _fd
    fd = _channel()
    if fd is None:
        return
    clean = name.replace("\n", " ").replace("\t", " ")[:_MAX_NAME]
    try:
        os.write(fd, f"{edge}\t{os.getpid()}\t{clean}\n".encode("utf-8", "replace"))
    except OSError:
        _fd = None  # the parent has gone (or the descriptor was closed): stay silent


class phase:  # noqa: N801  (used as `with phase(...)`, like a function)
    """`with phase("epoch-1", samples=60000): ...`, or `@phase("eval")` on a function.

    `samples`: how many samples the span processed (a tracker's energy per sample).
    """

    __slots__ = ("name", "samples", "_tokens")

    def __init__(self, name: str, samples: int | None = None) -> None:
        self.name = name
        self.samples = samples
        self._tokens: list[tuple[PhaseListener, Any]] = []

    def __enter__(self) -> phase:
        if _listeners or _channel() is not None:
            _send("B", self.name)
            self._tokens = [(lis, lis.begin_phase(self.name, self.samples)) for lis in _listeners]
        return self

    def __exit__(self, *exc: object) -> None:
        tokens, self._tokens = self._tokens, []
        for listener, token in reversed(tokens):
            listener.end_phase(token)
        if _fd is not None:
            _send("E", self.name)

    def __call__(self, func: Callable) -> Callable:
        import functools

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with phase(self.name, self.samples):
                return func(*args, **kwargs)

        return wrapper


@dataclass(frozen=True)
class PhaseEnergy:
    """One phase as the parent measured it. `depth` 0: not inside another phase."""

    name: str
    pid: int
    depth: int
    measurement: Measurement
    note: str = ""  # e.g. the command exited before the phase ended

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "name": self.name,
            "pid": self.pid,
            "depth": self.depth,
            "start_utc": m.start_utc,
            "duration_s": m.duration_s,
            "energy_j": m.total_energy_j,
            "source": m.total_source,
            "below_update_period": m.below_update_period,  # its energy is mostly noise
            "note": self.note,
        }


class PhaseRecorder:
    """The parent's side: a pipe for the command, and a thread that opens and closes a
    meter window at each edge it reads. `env()` and `pass_fds` go to `subprocess`."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter
        self._read_fd, self._write_fd = os.pipe()
        os.set_inheritable(self._write_fd, True)
        self.phases: list[PhaseEnergy] = []
        self._open: dict[tuple[int, str], list[tuple[str, int]]] = {}  # -> (window, depth)
        self._depth: dict[int, int] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="phases", daemon=True)

    @property
    def pass_fds(self) -> tuple[int]:
        return (self._write_fd,)

    def env(self) -> dict[str, str]:
        return {**os.environ, PHASE_FD_ENV: str(self._write_fd)}

    def start(self) -> None:
        self._thread.start()

    def spawned(self) -> None:
        """The command holds the write end now: drop ours, so its exit ends the stream."""
        os.close(self._write_fd)

    def _read(self) -> None:
        with os.fdopen(self._read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    with self._lock:
                        self._edge(line.decode("utf-8", "replace"))

    def _edge(self, line: str) -> None:
        parts = line.split("\t", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return
        edge, pid, name = parts[0], int(parts[1]), parts[2]
        key = (pid, name)
        if edge == "B":
            self._count += 1
            window = (
                f"phase {name}"
                if key not in self._open or not self._open[key]
                else (f"phase {name} #{self._count}")
            )
            depth = self._depth.get(pid, 0)
            self._depth[pid] = depth + 1
            self._open.setdefault(key, []).append((window, depth))
            self.meter.begin_window(window)
        elif edge == "E" and self._open.get(key):
            self._close(key, "")

    def _close(self, key: tuple[int, str], note: str) -> None:
        window, depth = self._open[key].pop()
        self._depth[key[0]] = depth
        m = self.meter.end_window(window)
        self.phases.append(PhaseEnergy(key[1], key[0], depth, m, note))

    def finish(self, timeout_s: float = 1.0) -> list[PhaseEnergy]:
        """After the command exited: the phases, in the order they began; one still open
        (a process that holds the pipe lives on, or never ended it) is closed now."""
        self._thread.join(timeout_s)
        with self._lock:
            for key, stack in list(self._open.items()):
                while stack:
                    self._close(key, "not ended by the command: measured until it exited")
            return sorted(self.phases, key=lambda p: p.measurement.start_time_s)


def outside_phases(total: Measurement, phases: list[PhaseEnergy]) -> tuple[float, float]:
    """Energy (J) and time (s) of `total` outside its top-level phases (start-up, imports,
    exit): the total minus the phases, so that phases and the rest add up to the total."""
    top = [p.measurement for p in phases if p.depth == 0]
    energy = total.total_energy_j - sum(m.total_energy_j for m in top)
    return energy, total.duration_s - sum(m.duration_s for m in top)
