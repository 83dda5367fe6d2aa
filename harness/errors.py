"""The project's exception type (defined in `probes.errors`, the lowest layer) and the one
way a failure is written into a row."""

from __future__ import annotations

import errno
import traceback
from pathlib import Path

from probes.errors import EnergyHarnessError

__all__ = [
    "EnergyHarnessError",
    "HarnessWarning",
    "OutputError",
    "error_text",
    "is_out_of_memory",
    "output_error",
]

_FIXES = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (disk quota exceeded)",
    errno.EFBIG: "the file is larger than this system allows",
    errno.EACCES: "make it writable or choose another folder",
    errno.EPERM: "make it writable or choose another folder",
    errno.EROFS: "make it writable or choose another folder",
    errno.ENAMETOOLONG: "use a shorter name (at most 255 bytes per folder or file name)",
}


class HarnessWarning(UserWarning):
    """The category of energy-harness's own warnings (the CLI prints each as one line)."""


class OutputError(EnergyHarnessError):
    """A result file could not be written (full disk, read-only folder): the run stops."""


def output_error(path: Path | str, exc: OSError, action: str = "write") -> OutputError:
    """`cannot write PATH: cause; fix`: one line for an OSError on a result file."""
    cause = exc.strerror or str(exc)
    fix = _FIXES.get(exc.errno or 0, "")
    return OutputError(f"cannot {action} {path}: {cause}" + (f"; {fix}" if fix else ""))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says an allocation failed (MemoryError, torch's CPU or CUDA OOM)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in text


def error_text(exc: BaseException) -> str:
    """`Type: message (at file.py:line)`: an exception and the last frame it came from.

    An EnergyHarnessError is already one line saying what is wrong and how to fix it: its
    message alone."""
    if isinstance(exc, EnergyHarnessError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
