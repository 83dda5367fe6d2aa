"""Stage 6, what a run writes: CSV columns, rows appended at once, the one statistics
module, CO2, merging shards. See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "CASE_COLUMNS": "columns",
    "MEASUREMENT_COLUMNS": "columns",
    "CsvAppender": "csvfile",
    "read_rows": "csvfile",
    "summarize": "stats",
    "carbon_settings": "carbon",
    "merge_runs": "merge",
    "measurement_rows": "measurements",
    "measured_case_row": "cases",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
