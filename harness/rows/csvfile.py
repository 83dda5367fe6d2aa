"""CSV and JSON files of a run: rows appended and flushed at once, read back as strings.

Every row is written and flushed as soon as it exists, so an interrupted run keeps
everything it finished. Cells are read back with `parse_float` and `parse_bool`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def parse_float(text: str | None) -> float:
    """A CSV cell as a float; empty or malformed cells are NaN."""
    if text is None:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_bool(text: str | None, default: bool) -> bool:
    """A CSV cell as a bool ('true'/'false', '1'/'0'); empty or unknown cells give `default`."""
    value = (text or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class CsvAppender:
    """Appends rows with fixed columns to a CSV, flushing and fsyncing each one."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists:
            with self.path.open(newline="") as handle:
                header = next(csv.reader(handle), [])
            if header != columns:
                raise EnergyHarnessError(
                    f"{self.path} has columns {header[:4]}..., not this version's; "
                    "resume it with the energy-harness version that started it"
                )
        self._handle = self.path.open("a", newline="")
        self._writer = csv.writer(self._handle)
        if not exists:
            self._writer.writerow(columns)
            self._flush()

    def _flush(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, row: dict[str, Any]) -> None:
        """Write one row now; unknown keys are an error, missing ones are empty."""
        extra = set(row) - set(self.columns)
        if extra:
            raise KeyError(f"unknown columns for {self.path.name}: {sorted(extra)}")
        self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._flush()

    def append_many(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.append(row)

    def close(self) -> None:
        self._handle.close()


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV as dicts of strings ([] if the file is absent)."""
    if not Path(path).exists():
        return []
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a temporary file, then rename)."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
