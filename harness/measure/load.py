"""How busy the rest of the machine was during a window: `other_cpu_pct`.

    other_cpu_pct = 100 x (CPUs x duration - idle - tree CPU time) / (CPUs x duration)

- CPUs: the logical CPUs online (`os.cpu_count()`); duration: between the two samples.
- idle: the machine's idle time summed over CPUs, the second field of /proc/uptime (the
  kernel's per-CPU idle counters, the `idle` column of /proc/stat, printed in 10 ms
  steps). /proc/stat itself is not read at window edges: it prints every interrupt's
  count and costs up to milliseconds on large machines, where /proc/uptime costs about a
  microsecond. Time that is not idle includes other processes, interrupts, time waiting
  for I/O and, in a VM, time the hypervisor gave to other machines (steal): everything
  that competes with the measured work.
- the measured process tree (`probes.model.ProcessTree`, the same tree the modelled
  probe charges): a root process (this one unless told otherwise; the torchrun agent of
  a distributed job), its threads, its live descendants, and every child they have
  waited for (the kernel adds those to the parent's `cutime`). This process's time
  comes from `os.times()`, other processes' from /proc/PID/stat, in clock ticks (10 ms)
  like the idle counter. The list of live descendants is refreshed in the background
  each second; a child that lived and died between two refreshes without being waited
  for by the tree counts as other.

A window whose capacity (CPUs x duration) is under 0.2 CPU-seconds gets None: the 10 ms
steps of the idle counter would make its figure noise.
"""

from __future__ import annotations

import os
import threading
import time

from probes.model import ProcessTree

MIN_CAPACITY_S = 0.2  # CPU-seconds: below, the idle counter's 10 ms steps dominate
REFRESH_S = 1.0  # how often the tree's live descendants are listed again
UPTIME = "/proc/uptime"

# One sample: (monotonic time, machine idle seconds since boot, tree CPU seconds). A plain
# tuple: window edges take one each, and a tuple is the cheapest thing to build.
LoadSample = tuple[float, float, float]


class MachineLoad:
    """Samples the machine's idle time and the measured tree's CPU time (cheaply)."""

    def __init__(self, root_pid: int | None = None) -> None:
        self.tree = ProcessTree(root_pid)
        self.cpus = os.cpu_count() or 1
        self._uptime_fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open_uptime()

    def _open_uptime(self) -> None:
        if self._uptime_fd < 0:
            try:
                self._uptime_fd = os.open(UPTIME, os.O_RDONLY)
            except OSError:
                self._uptime_fd = -1  # not Linux: other_cpu_pct is None

    @property
    def available(self) -> bool:
        """False where /proc/uptime cannot be read (not Linux): other_cpu_pct is None."""
        return self._uptime_fd >= 0

    def start(self) -> None:
        """List the tree now, then again every second in a daemon thread."""
        self._open_uptime()
        if self._thread is not None or not self.available:
            return
        self.tree.refresh()
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(REFRESH_S):
                self.tree.refresh()

        self._thread = threading.Thread(target=loop, name="machine-load", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listing the tree and close the /proc files (`start` opens them again)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        self.tree.close()
        if self._uptime_fd >= 0:
            os.close(self._uptime_fd)
            self._uptime_fd = -1

    def sample(self) -> LoadSample | None:
        """Now: time, idle seconds of the machine, CPU seconds of the tree (None: unknown)."""
        if self._uptime_fd < 0:
            return None
        try:
            idle_s = float(os.pread(self._uptime_fd, 64, 0).split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return (time.monotonic(), idle_s, self.tree.cpu_s())

    def other_cpu_pct(self, begin: LoadSample | None, end: LoadSample | None) -> float | None:
        """CPU time outside the tree between two samples, % of all CPUs (None: unknown)."""
        if begin is None or end is None:
            return None
        (t0, idle0, tree0), (t1, idle1, tree1) = begin, end
        capacity_s = self.cpus * (t1 - t0)
        if capacity_s < MIN_CAPACITY_S:
            return None
        other_s = capacity_s - (idle1 - idle0) - (tree1 - tree0)
        return min(100.0, max(0.0, 100.0 * other_s / capacity_s))
