"""CSV and JSON files of a run: rows appended and flushed at once, read back as strings.

Every row is written and flushed as soon as it exists, so an interrupted run keeps
everything it finished. A row cut off by a crash or a full disk is set aside when the
file is next opened for appending; readers name the line of a damaged file. Files are
read a line at a time (`iter_rows`, only the columns asked for), so a reader's memory
does not grow with the file. Cells are read back with `parse_float` and `parse_bool`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import operator
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError, OutputError, output_error
from harness.rows.columns import NON_NEGATIVE_ENERGY_COLUMNS as NON_NEGATIVE

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


TORN_SUFFIX = ".torn"  # where a partial last row is kept when it is cut off a CSV


class _Records:
    """The records of a CSV, one at a time, with the line each starts on (1-based); a
    last row cut off by a crash is kept apart (`torn`, `torn_line`), not yielded.

    A row written by `CsvAppender` ends with a newline outside quotes: a file that does
    not, or that ends inside a quoted field, ends with a partial row. Lines end at "\n"
    only. The file is read a line at a time: memory does not grow with its size.
    """

    def __init__(self, path: Path, errors: str) -> None:
        self.path = path
        self.errors = errors  # how bytes that are not UTF-8 are decoded
        self.torn = ""  # the partial last row ("" when the file ends with a complete row)
        self.torn_line = 0  # its first line
        self._record_lines: list[str] = []

    def _lines(self, handle: Iterable[str]) -> Iterator[str]:
        for line in handle:
            self._record_lines.append(line)
            yield line

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        try:
            handle = self.path.open(encoding="utf-8", errors=self.errors, newline="\n")
        except OSError as exc:
            raise output_error(self.path, exc, "read") from None
        held: tuple[int, list[str]] | None = None  # yielded once another record follows
        lines: list[str] = []
        with handle:
            reader = csv.reader(self._lines(handle))
            try:
                for fields in reader:
                    if held is not None:
                        yield held
                    held = (reader.line_num - len(self._record_lines) + 1, fields)
                    lines, self._record_lines = self._record_lines, []
            except csv.Error as exc:
                raise EnergyHarnessError(
                    f"{self.path}: line {reader.line_num}: {exc} (a damaged or hand-edited "
                    "line); restore the file, or delete that line"
                ) from None
            except OSError as exc:
                raise output_error(self.path, exc, "read") from None
        if held is None:
            return
        tail = "".join(lines)
        if not tail.endswith("\n") or tail.count('"') % 2:
            self.torn, self.torn_line = tail, held[0]
            return
        yield held


def _field_count_error(path: Path, line: int, fields: int, header: int) -> EnergyHarnessError:
    return EnergyHarnessError(
        f"{path}: line {line} has {fields} fields, the header {header} "
        "(a damaged or hand-edited line); restore the file, or delete that line "
        "(its case is then measured again on --resume)"
    )


@dataclass(frozen=True)
class _Scan:
    """A CSV's header, its first damaged line (an error, None when none), its partial
    last row ("" when none) and that row's first line."""

    header: list[str]
    damaged: EnergyHarnessError | None
    torn: str
    torn_line: int


def _scan(path: Path) -> _Scan:
    """Read a CSV through once, keeping only its header and what is wrong with it."""
    records = _Records(path, "surrogateescape")
    header: list[str] = []
    damaged = None
    for number, (line, fields) in enumerate(records):
        if number == 0:
            header = fields
        elif fields and len(fields) != len(header) and damaged is None:
            damaged = _field_count_error(path, line, len(fields), len(header))
    return _Scan(header, damaged, records.torn, records.torn_line)


def set_aside_torn_row(path: Path) -> str | None:
    """Cut a partial last row off `path` into `<path>.torn`; a line saying so, or None.

    A crash or a full disk in the middle of a write leaves a partial row; the next row
    would be glued to it. The partial row is appended to the side file first (nothing is
    lost), then cut off.
    """
    return _set_aside(Path(path))[1]


def _set_aside(path: Path) -> tuple[_Scan, str | None]:
    """The file's header and damage, and the line saying a partial row was set aside."""
    if not path.is_file():
        return _Scan([], None, "", 0), None
    scan = _scan(path)
    if not scan.torn:
        return scan, None
    torn = scan.torn.encode("utf-8", "surrogateescape")
    side = path.with_name(path.name + TORN_SUFFIX)
    try:
        with side.open("ab") as handle:
            handle.write(torn + (b"" if torn.endswith(b"\n") else b"\n"))
            handle.flush()
            os.fsync(handle.fileno())
        os.truncate(path, path.stat().st_size - len(torn))
    except OSError as exc:
        raise output_error(side, exc) from None
    message = (
        f"{path}: line {scan.torn_line} was cut off mid-write ({len(torn)} bytes); moved to {side}"
    )
    return _Scan(scan.header, scan.damaged, "", 0), message


def _csv_bytes(rows: Iterable[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


class CsvAppender:
    """Appends rows with fixed columns to a CSV, each one written and fsynced at once.

    Opening sets a partial last row aside (`set_aside_torn_row`, said in `set_aside`) and
    checks the header and every line. Rows go straight to the file, nothing is buffered:
    a failed write (full disk, read-only file) raises OutputError, and the appender then
    refuses further rows, so no row is ever glued to a partial one.
    """

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns
        scan, self.set_aside = _set_aside(self.path)
        if scan.damaged is not None:
            raise scan.damaged
        header = scan.header
        if header and header != columns:
            raise EnergyHarnessError(
                f"{self.path} has columns {header[:4]}..., not this version's; "
                "resume it with the energy-harness version that started it"
            )
        self._failed: OutputError | None = None
        self._fd: int | None = None
        self._open()
        if not header:
            self._write(_csv_bytes([columns]))

    def _open(self) -> None:
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def rewrite(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the whole file with `rows` (atomically: `rewrite_csv`), then go on
        appending to it. Used where a row already written gains what is learnt later."""
        self.close()
        rewrite_csv(self.path, self.columns, rows)
        self._open()

    def _write(self, data: bytes) -> None:
        if self._failed is not None:
            raise self._failed
        if self._fd is None:
            raise EnergyHarnessError(f"{self.path}: appended to after close")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            self._failed = output_error(self.path, exc)
            raise self._failed from None

    def _cells(self, row: dict[str, Any]) -> list[Any]:
        extra = set(row) - set(self.columns)
        if extra:
            raise KeyError(f"unknown columns for {self.path.name}: {sorted(extra)}")
        return [_cell(row.get(c)) for c in self.columns]

    def append(self, row: dict[str, Any]) -> None:
        """Write one row now; unknown keys are an error, missing ones are empty."""
        self._write(_csv_bytes([self._cells(row)]))

    def append_many(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write rows now, in one write and one fsync."""
        cells = [self._cells(row) for row in rows]
        if cells:
            self._write(_csv_bytes(cells))

    def close(self) -> None:
        """Close the file; never raises (every row is already on disk)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV as dicts of strings ([] if the file is absent): `iter_rows`."""
    return list(iter_rows(path))


def iter_rows(path: Path, columns: Iterable[str] | None = None) -> Iterator[dict[str, str]]:
    """The rows of a CSV one at a time, as dicts of strings (none if the file is absent),
    holding only `columns` where they are given (those the file has).

    The file is read a line at a time, so a reader that keeps only what it needs holds
    memory that does not grow with the file. Raises EnergyHarnessError naming the file
    and line when a line has the wrong number of fields, the last one was cut off
    mid-write, or an energy is negative (NON_NEGATIVE_ENERGY_COLUMNS, checked whether
    asked for or not).
    """
    path = Path(path)
    if not path.exists():
        return
    records = _Records(path, "replace")
    header: list[str] | None = None
    for line, fields in records:
        if header is None:
            header = fields
            wanted = header if columns is None else set(columns)
            names = [name for name in header if name in wanted]
            pick = _picker([i for i, name in enumerate(header) if name in wanted])
            energies = [(name, i) for i, name in enumerate(header) if name in NON_NEGATIVE]
            continue
        if not fields:
            continue
        if len(fields) != len(header):
            raise _field_count_error(path, line, len(fields), len(header))
        for name, i in energies:
            if "-" in fields[i] and parse_float(fields[i]) < 0:  # no "-": not negative
                raise _negative_energy_error(path, line, name, fields[i])
        yield dict(zip(names, pick(fields), strict=True))
    if records.torn:
        raise EnergyHarnessError(
            f"{path}: line {records.torn_line} was cut off mid-write (the run stopped while "
            "writing it); `energy-harness run --resume RUN_DIR` moves it aside, or delete "
            "that line"
        )


def _picker(indices: list[int]) -> Callable[[list[str]], Iterable[str]]:
    """The fields at `indices` of a record, in order."""
    if len(indices) > 1:
        return operator.itemgetter(*indices)
    return lambda fields: [fields[i] for i in indices]


def _negative_energy_error(path: Path, line: int, column: str, text: str) -> EnergyHarnessError:
    return EnergyHarnessError(
        f"{path}: line {line}: {column} is {text}, below zero; an energy never is (a "
        "damaged or hand-edited line): restore the file, or delete that line (its case is "
        "then measured again on --resume)"
    )


REWRITE_BATCH_ROWS = 10_000  # rows per write while rewriting: memory stays flat


def rewrite_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write a CSV whole, atomically (a temporary file beside it, fsynced, then renamed
    over it): a crash leaves the old file or the new one, never half of either. `rows`
    are written in batches as they come, so they may stream from the file being
    rewritten (`iter_rows(path)`). Raises OutputError naming the file and the cause; the
    temporary file is never left."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        appender = CsvAppender(tmp, columns)
        try:
            rows = iter(rows)
            while batch := list(itertools.islice(rows, REWRITE_BATCH_ROWS)):
                appender.append_many(batch)
        finally:
            appender.close()
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise output_error(path, exc) from None
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (a temporary file, then rename); never leaves the
    temporary file behind. Raises OutputError naming the file and the cause."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a temporary file, then rename); raises OutputError."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
