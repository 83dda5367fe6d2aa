"""Clock helpers shared by every stage: UTC timestamps and the CUDA synchronisation point."""

from __future__ import annotations

import sys
from datetime import datetime, timezone


def utc_now_iso() -> str:
    """The current time as UTC ISO-8601 (microseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def sync_cuda() -> None:
    """Wait for queued CUDA work, if this process has initialised CUDA (cheap otherwise)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()
