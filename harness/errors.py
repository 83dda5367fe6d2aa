"""The project's exception type (defined in `probes.errors`, the lowest layer) and the one
way a failure is written into a row."""

from __future__ import annotations

import errno
import sys
import traceback
import warnings
from pathlib import Path

from probes.errors import EnergyHarnessError

__all__ = [
    "EnergyHarnessError",
    "HarnessWarning",
    "OutputError",
    "error_text",
    "is_out_of_memory",
    "output_error",
    "warn_user",
]

# modules whose frames a warning skips to reach the line the user wrote: ours, the
# context managers between, and the training frameworks that call our callbacks
NOT_USER_CODE = ("harness", "contextlib", "transformers", "accelerate", "lightning", "torch")

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


def warn_user(warning: Warning) -> None:
    """Emit `warning` at the first frame outside NOT_USER_CODE: the user's line (a `with`,
    a call to `trainer.fit`), not ours. At most 50 frames up; else the outermost."""
    frame = sys._getframe(1)
    level = 2  # warnings.warn's 1 is this function's caller's caller's callee: count from 2
    while frame.f_back is not None and level < 50:
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".")[0] not in NOT_USER_CODE and module != "pytorch_lightning":
            break
        frame = frame.f_back
        level += 1
    warnings.warn(warning, stacklevel=level)
