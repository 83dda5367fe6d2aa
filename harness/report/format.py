"""How figures are written, the same in the terminal and the report: SI prefixes, units."""

from __future__ import annotations

import html
import math
from typing import Any

_PREFIXES = (
    (1e12, "T"),
    (1e9, "G"),
    (1e6, "M"),
    (1e3, "k"),
    (1, ""),
    (1e-3, "m"),
    (1e-6, "µ"),
    (1e-9, "n"),
    (1e-12, "p"),
)
MISSING = "–"


def fmt_si(value: float | None, unit: str, like: float | None = None) -> str:
    """A number with an SI prefix and its unit: 6.3e-05 J -> '63 µJ'; None or NaN -> '–'.

    `like`: pick the prefix for this magnitude instead (to write 1.9 mJ ± 0.241 mJ).
    """
    if value is None or not math.isfinite(value):
        return MISSING
    scale = like if like is not None and math.isfinite(like) and like != 0 else value
    if scale == 0:
        return f"0 {unit}"
    for factor, prefix in _PREFIXES:
        if abs(scale) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def fmt_number(value: float, digits: str = ".3g", suffix: str = "") -> str:
    """`value` with a format spec; '–' for NaN."""
    return f"{value:{digits}}{suffix}" if math.isfinite(value) else MISSING


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def mpl_text(text: str) -> str:
    """Text for matplotlib: '$' would start mathtext (and could fail to parse)."""
    return text.replace("$", r"\$")
