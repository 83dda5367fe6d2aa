"""The modelled fallback: energy of the measured process tree, from CPU time and memory.

No hardware counter is read; every figure is labelled `model` and the assumptions are
recorded in the domain notes and in `info()`.

- CPU: energy_j = cpu_time_s x TDP / logical CPUs. A logical CPU kept busy for one
  second is charged its share of the package's TDP. Idle and uncore power of the
  machine are not attributed to the process. TDP comes from codecarbon's bundled
  table (`codecarbon/data/hardware/cpu_power.csv`, matched on the CPU model name);
  an unknown CPU gets codecarbon's default of 4 W per logical CPU.
- RAM: power_w = RAM_W_PER_GB x resident set size (GB) of the tree, integrated over
  time; the RSS is sampled every 0.5 s in the background (with the tree's process
  list), so a reading costs no more than the tree's CPU time. 0.375 W/GB is the
  "3 W per 8 GB" rule of codecarbon's earlier RAM model.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import threading
import time
from pathlib import Path

import psutil

from probes.base import SOURCE_MODEL, Domain, Probe, ProbeOptions, Reading

DEFAULT_W_PER_THREAD = 4.0  # codecarbon's DEFAULT_POWER_PER_CORE for unknown CPUs
RAM_W_PER_GB = 3.0 / 8.0
RAM_SAMPLE_S = 0.5

_NOISE = re.compile(
    r"\(r\)|\(tm\)|\bcpu\b|@.*$|\d+-core processor|processor|\bwith .*$", re.IGNORECASE
)


def cpu_model_name() -> str:
    """The CPU model name from /proc/cpuinfo (empty if unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _clean(name: str) -> str:
    return " ".join(_NOISE.sub(" ", name).split()).lower()


def codecarbon_cpu_table() -> Path | None:
    """Path of codecarbon's bundled CPU TDP table, without importing codecarbon."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data/hardware/cpu_power.csv"
    return path if path.is_file() else None


def lookup_tdp_w(cpu_name: str, table: Path | None) -> tuple[float | None, str]:
    """TDP (W) of `cpu_name` in the table and the row it came from; (None, why) if absent.

    Matches the cleaned name exactly, else the longest table name found in it as whole
    words (so "AMD EPYC" alone matches nothing rather than an arbitrary EPYC).
    """
    if table is None:
        return None, "codecarbon's CPU table not found"
    target = _clean(cpu_name)
    if not target:
        return None, "CPU model name unknown"
    best: tuple[int, str, float] | None = None
    with table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name, tdp = row.get("Name", ""), row.get("TDP", "")
            cleaned = _clean(name)
            if not cleaned or not tdp:
                continue
            if cleaned == target:
                return float(tdp), f"{table.name}: {name!r}"
            if re.search(rf"(^|\s){re.escape(cleaned)}(\s|$)", target):
                if best is None or len(cleaned) > best[0]:
                    best = (len(cleaned), name, float(tdp))
    if best:
        return best[2], f"{table.name}: {best[1]!r}"
    return None, f"{cpu_name!r} is not in {table.name}"


def cpu_tdp_w(cpu_name: str, threads: int) -> tuple[float, str]:
    """TDP (W) of the CPU and where it came from: codecarbon's table, else its default of
    4 W per logical CPU (`threads` of them)."""
    tdp_w, where = lookup_tdp_w(cpu_name, codecarbon_cpu_table())
    if tdp_w is not None:
        return tdp_w, where
    return DEFAULT_W_PER_THREAD * threads, (
        f"default {DEFAULT_W_PER_THREAD:g} W per logical CPU x {threads} "
        f"(codecarbon's default; {where})"
    )


def descendants(pid: int) -> list[int]:
    """`pid` and all its live descendants.

    Reads /proc/PID/task/TID/children (cheap); where the kernel lacks those files it
    falls back to psutil, which scans every process on the machine.
    """
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:
            if current == pid:
                return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
        except OSError:
            continue  # exited meanwhile
    return out


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat_cpu_s(fd: int) -> float:
    """utime + stime + cutime + cstime from one open /proc/PID/stat (0 once it is gone)."""
    try:
        data = os.pread(fd, 1024, 0)
    except OSError:
        return 0.0  # exited and waited for: its time is in its parent's cutime now
    fields = data[data.rindex(b")") + 2 :].split()  # after `pid (comm) `: state is [0]
    return sum(int(f) for f in fields[11:15]) * _TICK_S


def _rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 if it is gone), from /proc/PID/statm."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


class ProcessTree:
    """CPU time and resident memory of a process tree, cheap to read at window edges.

    The tree: `root_pid` (default this process), its threads, its live descendants, and
    every child they have waited for (the kernel adds a waited-for child's time to its
    parent's cutime and cstime). `refresh()` lists the live descendants (a /proc walk,
    a few microseconds per thread) and keeps each one's /proc/PID/stat open, and sums
    their resident memory; `cpu_s()` then costs one `os.times()` for this process and
    one pread per other live process. Times come in clock ticks (10 ms). A child that
    lives and dies between two refreshes without being waited for by the tree is missed.
    """

    def __init__(self, root_pid: int | None = None) -> None:
        self.root_pid = root_pid or os.getpid()
        self.own = self.root_pid == os.getpid()
        self.rss_bytes = 0  # at the last refresh
        self.refreshed = False
        self._stat_fds: dict[int, int] = {}  # live processes of the tree but this one
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """List the live processes of the tree again and sum their resident memory."""
        try:
            pids = set(descendants(self.root_pid))
        except psutil.Error:  # the root is gone
            pids = set()
        self.rss_bytes = sum(_rss_bytes(pid) for pid in pids)
        if self.own:
            pids.discard(self.root_pid)  # read through os.times()
        with self._lock:
            for pid in set(self._stat_fds) - pids:
                os.close(self._stat_fds.pop(pid))
            for pid in pids - set(self._stat_fds):
                try:
                    self._stat_fds[pid] = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
                except OSError:
                    continue  # exited meanwhile
        self.refreshed = True

    def cpu_s(self) -> float:
        """CPU seconds (user + system, waited-for children included) of the whole tree."""
        total = 0.0
        if self.own:
            t = os.times()
            total = t[0] + t[1] + t[2] + t[3]  # user, system, children_user, children_system
        if self._stat_fds:
            with self._lock:
                total += sum(_stat_cpu_s(fd) for fd in self._stat_fds.values())
        return total

    def close(self) -> None:
        """Close the /proc files (the next refresh opens them again)."""
        with self._lock:
            for fd in self._stat_fds.values():
                os.close(fd)
            self._stat_fds.clear()


class ModelProbe(Probe):
    """Modelled CPU and RAM energy of a process tree (always available)."""

    name = "model"
    source = SOURCE_MODEL
    min_window_s = 0.05  # CPU-time accounting resolution (scheduler ticks)

    def __init__(self, options: ProbeOptions | None = None) -> None:
        super().__init__(options)
        self.pid = self.options.pid or os.getpid()
        self.threads = psutil.cpu_count(logical=True) or 1
        self.cpu_name = cpu_model_name()
        self.tdp_w, self.tdp_source = cpu_tdp_w(self.cpu_name, self.threads)
        self.w_per_thread = self.tdp_w / self.threads
        self._tree = ProcessTree(self.pid)
        self._cpu_s = 0.0
        self._ram_j = 0.0
        self._last_t = 0.0

    def unavailable_reason(self) -> str | None:
        if not psutil.pid_exists(self.pid):
            return f"process {self.pid} does not exist"
        return None

    def domains(self) -> list[Domain]:
        cpu_note = (
            f"modelled: CPU time x {self.w_per_thread:.2f} W per logical CPU "
            f"(TDP {self.tdp_w:g} W / {self.threads}; TDP from {self.tdp_source})"
        )
        ram_note = f"modelled: {RAM_W_PER_GB:.3f} W per GB of resident memory of the tree"
        return [
            Domain("cpu:model", SOURCE_MODEL, "cpu", None, cpu_note),
            Domain("ram:model", SOURCE_MODEL, "dram", None, ram_note),
        ]

    def _advance(self) -> float:
        """Fold CPU time and RAM (at the last sampled RSS) up to now into the totals."""
        if not self._tree.refreshed:
            self._tree.refresh()
        cpu_s = self._tree.cpu_s()
        now = time.monotonic()
        # A child that exited but is not yet waited for can drop out for a moment: never go back.
        self._cpu_s = max(self._cpu_s, cpu_s)
        if self._last_t:
            self._ram_j += RAM_W_PER_GB * self._tree.rss_bytes / 1e9 * (now - self._last_t)
        self._last_t = now
        return now

    def start(self) -> None:
        if self._loop is not None:
            return
        self._tree.refresh()
        with self._lock:
            self._advance()
        self._start_loop("model-ram", RAM_SAMPLE_S, self._sample)

    def _sample(self) -> None:
        """Every RAM_SAMPLE_S: RAM up to now at the old RSS, then the tree and RSS anew."""
        with self._lock:
            self._advance()
        self._tree.refresh()

    def close(self) -> None:
        super().close()
        self._tree.close()

    def read(self) -> Reading:
        with self._lock:
            now = self._advance()
            return Reading(
                now,
                {"cpu:model": self._cpu_s * self.w_per_thread, "ram:model": self._ram_j},
            )

    def info(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "cpu_model": self.cpu_name,
            "logical_cpus": self.threads,
            "tdp_w": self.tdp_w,
            "tdp_source": self.tdp_source,
            "w_per_logical_cpu": self.w_per_thread,
            "ram_w_per_gb": RAM_W_PER_GB,
            "ram_source": "3 W per 8 GB, codecarbon's earlier RAM model",
        }
