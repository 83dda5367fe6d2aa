"""Run directories: `results/<run-id>/` with its CSVs, environment and report.

One process at a time writes a run directory: it holds an exclusive lock on its
`run.lock` (`fcntl.flock`, released by the kernel whatever way the process ends), and the
file says who holds it. Readers that must not see a run half-written (merge) take a
shared lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import EnergyHarnessError, output_error

RUN_FILES = ("measurements.csv", "cases.csv", "environment.json", "power_timeline.csv")
RUN_CSVS = ("measurements.csv", "cases.csv", "power_timeline.csv")
LOCK_FILE = "run.lock"
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id from the UTC time, e.g. 20261128T190501Z."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def _holds_files(out: Path) -> EnergyHarnessError:
    return EnergyHarnessError(
        f"--out {out} already holds files; choose an empty directory, or continue "
        f"that run with `energy-harness run --resume {out}`"
    )


def create_run_dir(out: Path | None, results_root: Path = Path("results")) -> Path:
    """A fresh run directory: `out` (must be empty or absent) or results/<run-id>[-N].

    Two processes may both find `out` empty: the one that wins its lock writes it, the
    other is refused by `claim_run_dir`, which each calls under the lock."""
    if out is not None:
        out = Path(out)
        try:
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise _holds_files(out)
            out.mkdir(parents=True)
        except FileExistsError:
            pass  # empty a moment ago, or made meanwhile: `claim_run_dir` decides
        except OSError as exc:
            raise output_error(out, exc, "create") from None
        return out
    base = results_root / new_run_id()
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        except OSError as exc:
            raise output_error(candidate, exc, "create") from None


def claim_run_dir(run_dir: Path) -> None:
    """Under the run's lock, before writing its first file: refuse a directory that holds
    anything but the lock (another run got there first)."""
    try:
        taken = [p for p in Path(run_dir).iterdir() if p.name != LOCK_FILE]
    except NotADirectoryError:
        taken = [run_dir]
    if taken:
        raise _holds_files(run_dir)


def run_in_progress(run_dir: Path) -> str | None:
    """Who is writing `run_dir` now (its lock's holder), or None when nobody is."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: no run was ever written there by this tool
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip()
            return holder or "another process"
        return None
    finally:
        os.close(fd)  # releases the shared lock


def in_progress_note(run_dir: Path) -> str | None:
    """A sentence for readers (report, compare) of a run still being written, or None."""
    holder = run_in_progress(run_dir)
    if holder is None:
        return None
    return (
        f"{run_dir} is still being written by {holder}: these figures are of the cases "
        "finished so far, and the case being measured may show only some of its "
        "repetitions; look again when the run ends"
    )


def _open_lock(path: Path, shared: bool) -> int | None:
    """The lock file's descriptor; None for a reader of a folder it cannot write."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if not shared or exc.errno not in (*_READ_ONLY, errno.ENOENT):
            raise output_error(path, exc) from None
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # nobody can be writing a run there without creating its lock file


@contextlib.contextmanager
def locked_run_dir(run_dir: Path, purpose: str, *, shared: bool = False) -> Iterator[None]:
    """Hold `run_dir`'s lock: exclusive to write it (`purpose` says what for), shared to
    read it whole. Raises EnergyHarnessError naming the holder when it is taken."""
    path = Path(run_dir) / LOCK_FILE
    fd = _open_lock(path, shared)
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip()
            raise EnergyHarnessError(
                f"{run_dir} is in use by {holder or 'another process'}; wait until it ends "
                "(or stop it), then try again"
            ) from None
        if shared:
            yield
            return
        _write_holder(fd, path, purpose)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _write_holder(fd: int, path: Path, purpose: str) -> None:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = f"process {os.getpid()} on {socket.gethostname()} ({purpose}, since {started})\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError as exc:
        raise output_error(path, exc) from None
