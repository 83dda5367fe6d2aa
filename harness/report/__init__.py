"""Stage 8, looking at finished runs: the HTML report, its plots and views, `compare`.
See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "render_report": "page",
    "write_report": "page",
    "compare_runs": "compare",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
