"""Stage 7, the main job: suite -> case -> prepare -> measure -> estimate -> rows; `ddp/`
for distributed cases. See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "RunOptions": "options",
    "run_suite": "runner",
    "run_case": "case",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
