"""Reading sysfs number files cheaply, and where the sysfs tree is (for tests, a fake one).

A `SysfsNumber` keeps its file open and reads it with `os.pread` at offset 0, which makes
sysfs print the value afresh: one system call per reading.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ENV_SYSFS_ROOT = "ENERGY_HARNESS_SYSFS_ROOT"
READ_BYTES = 32


def resolve_sysfs_root(option: Path | None) -> Path:
    """The sysfs tree: the option, else $ENERGY_HARNESS_SYSFS_ROOT, else /sys."""
    if option is not None:
        return Path(option)
    return Path(os.environ.get(ENV_SYSFS_ROOT) or "/sys")


def read_text(path: Path) -> str:
    """A small sysfs file's text, stripped ("" when it cannot be read)."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


class SysfsNumber:
    """One integer sysfs file, open for the reader's lifetime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def read(self) -> int:
        """The file's integer now. OSError when it cannot be read, ValueError when it is
        not an integer (the message quotes what it holds)."""
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDONLY)
        data = os.pread(self._fd, READ_BYTES, 0)
        try:
            return int(data)
        except ValueError:
            text = data.decode(errors="replace").strip()
            raise ValueError(f"{self.path} holds {text!r}, not an integer") from None

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
