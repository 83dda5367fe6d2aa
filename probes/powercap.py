"""The Linux powercap tree as files: where it is, its zone folders, and its small files
read safely (non-blocking, regular files only: a FIFO under `--powercap-root` is an
error, never a hang)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from probes.errors import EnergyHarnessError

ENV_ROOT = "ENERGY_HARNESS_POWERCAP_ROOT"
DEFAULT_ROOTS = (Path("/sys/class/powercap"), Path("/sys/devices/virtual/powercap"))
ZONE_RE = re.compile(r"^intel-rapl(-mmio)?(:\d+)+$")
CONTROL_RE = re.compile(r"^intel-rapl(-mmio)?$")


def open_regular(path: Path) -> int:
    """A read-only descriptor of `path`, opened without blocking; OSError unless it is a
    regular file (a FIFO would block every read, a device is no counter)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(
                f"{path} is not a regular file (a FIFO, socket or device): a sysfs counter "
                "is a regular file; point --powercap-root at a powercap tree"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_text(path: Path) -> str:
    """A small sysfs file's text (OSError if it cannot be read or is not a regular file)."""
    fd = open_regular(path)
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace")
    finally:
        os.close(fd)


def read_int(path: Path) -> int:
    """Read an integer sysfs file (OSError, or EnergyHarnessError naming the content)."""
    text = read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise EnergyHarnessError(f"{path} holds {text!r}, not an integer") from None


def resolve_root(option: Path | None) -> Path | None:
    """The powercap root: option, else $ENERGY_HARNESS_POWERCAP_ROOT, else the /sys defaults."""
    if option is not None:
        return Path(option)
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env)
    for root in DEFAULT_ROOTS:
        if root.is_dir():
            return root
    return None


def find_zone_dirs(root: Path) -> dict[str, Path]:
    """Zone id -> directory, for both flat (/sys/class) and nested (/sys/devices) layouts."""
    found: dict[str, Path] = {}

    def visit(directory: Path, depth: int) -> None:
        if depth > 4:
            return
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            return
        for entry in entries:
            if ZONE_RE.match(entry.name):
                if entry.name not in found and (entry / "name").exists():
                    found[entry.name] = entry
                visit(entry, depth + 1)
            elif CONTROL_RE.match(entry.name) and entry.is_dir():
                visit(entry, depth + 1)

    visit(root, 0)
    return found
