"""Stage 7, the main job: suite -> groups of cases -> prepare -> rounds (measure) ->
estimate -> rows; `ddp/` for distributed cases. See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "RunOptions": "options",
    "run_suite": "runner",
    "run_group": "group",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
