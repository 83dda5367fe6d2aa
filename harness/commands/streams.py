"""The terminal the CLI writes to, as it may be: a width that makes no sense, a stream
that cannot encode `µ`, a reader that went away (`run | head -1`).

- `sane_width_env()`: a COLUMNS (or LINES) that is not a number from MIN_COLUMNS to
  MAX_COLUMNS is dropped, so every console falls back to the terminal's size or 80.
- `ascii_fallback(stream)`: characters the stream cannot encode are written as ASCII
  (`µJ` -> `uJ`, `–` -> `-`); anything else unencodable as `?`.
- `PipeGuard`: stdout whose reader closed it; the first BrokenPipeError sends the rest
  of the output to /dev/null and is remembered (`reader_gone`), so the command decides what
  to do (a run stops after the cases in progress) instead of dying mid-row; another
  write error (`> /dev/full`) is one line, `cannot write standard output: ...`.
"""

from __future__ import annotations

import codecs
import os
import sys
from typing import Any, TextIO

from harness.errors import output_error

MIN_COLUMNS, MAX_COLUMNS = 20, 4096
ERRORS = "energy-harness-ascii"  # the codec error handler `ascii_fallback` installs
ASCII = {
    "µ": "u",
    "μ": "u",
    "–": "-",
    "—": "-",
    "−": "-",
    "…": "...",
    "×": "x",
    "±": "+/-",
    "≥": ">=",
    "≤": "<=",
    "→": "->",
    "←": "<-",
    "·": ".",
    "•": "*",
    "≈": "~",
    "°": " deg",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "\N{NO-BREAK SPACE}": " ",
    "\N{NARROW NO-BREAK SPACE}": " ",
    "\N{THIN SPACE}": " ",
    "²": "^2",
}


def sane_width_env(environ: dict[str, str] | Any = os.environ) -> None:
    """Drop a COLUMNS or LINES that no terminal has (0, 3, 10**9, text): consoles then
    use the terminal's size, or 80 columns when there is none."""
    for name, low in (("COLUMNS", MIN_COLUMNS), ("LINES", 1)):
        value = environ.get(name)
        if value is None:
            continue
        if not value.strip().isdigit() or not low <= int(value) <= MAX_COLUMNS:
            del environ[name]


def _ascii_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    text = "".join(ASCII.get(ch, "?") for ch in bad)
    return text, exc.end


codecs.register_error(ERRORS, _ascii_replace)


def ascii_fallback(stream: TextIO) -> None:
    """Make `stream` write what its encoding lacks as ASCII instead of raising
    UnicodeEncodeError (a no-op for streams that cannot be reconfigured)."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors=ERRORS)


class PipeGuard:
    """A text stream (stdout) whose reader may go away. Writes go through until the
    first BrokenPipeError; from then on the file descriptor points at /dev/null, writes
    are dropped and `reader_gone` is True."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._failed(exc)
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        """A reader gone is remembered; any other failure (a full disk behind `>`) is an
        OutputError. Either way the rest goes to /dev/null, so exiting flushes nothing."""
        self._to_devnull()
        if not isinstance(exc, BrokenPipeError):
            raise output_error("standard output", exc) from None

    def _to_devnull(self) -> None:
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stdout() -> PipeGuard:
    """sys.stdout as a PipeGuard (installed once), with the ASCII fallback on stdout and
    stderr."""
    for stream in (sys.stdout, sys.stderr):
        ascii_fallback(stream)
    if not isinstance(sys.stdout, PipeGuard):
        sys.stdout = PipeGuard(sys.stdout)  # type: ignore[assignment]
    return sys.stdout  # type: ignore[return-value]


def stdout_closed() -> bool:
    """Whether stdout's reader went away (a PipeGuard saw a broken pipe)."""
    return isinstance(sys.stdout, PipeGuard) and sys.stdout.reader_gone
