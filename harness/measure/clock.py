"""Clock helpers shared by every stage: UTC timestamps and the CUDA synchronisation point."""

from __future__ import annotations

import functools
import sys
import time


def utc_iso(time_s: float) -> str:
    """`time.time()` seconds as UTC ISO-8601 with microseconds: 2026-01-31T12:00:00.000001+00:00.

    As `datetime.isoformat(timespec="microseconds")` writes it, in a third of the time
    (the part down to the second is cached): window edges call it.
    """
    second = int(time_s)
    micro = min(int((time_s - second) * 1e6 + 0.5), 999_999)
    return f"{_utc_second(second)}.{micro:06d}+00:00"


@functools.lru_cache(maxsize=8)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def utc_now_iso() -> str:
    """The current time as UTC ISO-8601 (microseconds)."""
    return utc_iso(time.time())


def sync_cuda() -> None:
    """Wait for queued CUDA work, if this process has initialised CUDA (cheap otherwise)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()
