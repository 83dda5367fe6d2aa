"""The project's exception type (defined in `probes.errors`, the lowest layer) and the one
way a failure is written into a row."""

from __future__ import annotations

import traceback
from pathlib import Path

from probes.errors import EnergyHarnessError

__all__ = ["EnergyHarnessError", "error_text"]


def error_text(exc: BaseException) -> str:
    """`Type: message (at file.py:line)`: an exception and the last frame it came from.

    An EnergyHarnessError is already one line saying what is wrong and how to fix it: its
    message alone."""
    if isinstance(exc, EnergyHarnessError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
