"""How figures are written, the same in the terminal and the report: SI prefixes, units."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

from harness.measure.sources import source_label
from harness.prepare.energy import ORIGIN_CACHE
from harness.rows.break_even import NEVER, BreakEven
from harness.rows.preparation import Preparation
from harness.spec.case import CASE_ID_PARTS, split_case_id

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


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def si_prefix(scale: float) -> tuple[float, str]:
    """The SI factor and prefix for a magnitude: 6.3e-05 -> (1e-06, 'µ'); 0 -> (1, '')."""
    if scale == 0 or not math.isfinite(scale):
        return 1.0, ""
    for factor, prefix in _PREFIXES:
        if abs(scale) >= factor:
            return factor, prefix
    return _PREFIXES[-1]


def fmt_si(value: float | None, unit: str, like: float | None = None) -> str:
    """A number with an SI prefix and its unit: 6.3e-05 J -> '63 µJ'; None or NaN -> '–'.

    `like`: pick the prefix for this magnitude instead (to write 1.9 mJ ± 0.241 mJ).
    """
    if value is None or not math.isfinite(value):
        return MISSING
    scale = like if _finite(like) and like != 0 else value
    if scale == 0:
        return f"0 {unit}"
    factor, prefix = si_prefix(scale)
    return f"{value / factor:.3g} {prefix}{unit}"


def _decimals(value: float, digits: int = 3) -> int:
    """Decimals that show `value` with `digits` significant digits (at least 0)."""
    if value == 0:
        return 0
    return max(0, digits - 1 - math.floor(math.log10(abs(value))))


def fmt_interval(
    mean: float | None,
    low: float | None,
    high: float | None,
    unit: str,
    like: float | None = None,
) -> str:
    """`0.228 mJ [0.222, 0.234]`: a mean with 3 significant digits and its 95 % interval
    in the same prefix and decimals; the mean alone without an interval; '–' without one.

    `like`: the magnitude whose prefix to use (one prefix for a whole table column).
    """
    if not _finite(mean):
        return MISSING
    assert mean is not None
    factor, prefix = si_prefix(like if _finite(like) and like != 0 else mean)
    decimals = _decimals(mean / factor)
    text = f"{mean / factor:.{decimals}f} {prefix}{unit}"
    if _finite(low) and _finite(high):
        assert low is not None and high is not None
        text += f" [{_bound(low / factor, decimals)}, {_bound(high / factor, decimals)}]"
    return text


def _bound(value: float, decimals: int) -> str:
    """An interval's bound in the mean's prefix and decimals; one beyond 10,000 of them
    (an interval from two wild repetitions) in two significant digits: `5e+10`."""
    return f"{value:.2g}" if abs(value) >= 1e4 else f"{value:.{decimals}f}"


MAX_CHANGE_PCT = 999  # a change beyond it is shown as `>+999`: the figure says nothing more


def fmt_change(ratio: float | None, low: float | None = None, high: float | None = None) -> str:
    """A ratio as a signed change with its interval: 0.58 [0.55, 0.61] -> `-42 % [-45, -39]`
    (one decimal below 10 %; above +999 % `>+999`); '–' without a ratio."""
    if not _finite(ratio):
        return MISSING
    assert ratio is not None
    values = [(v - 1) * 100 for v in (ratio, low, high) if _finite(v)]
    decimals = 0 if max(abs(v) for v in values) >= 10 else 1

    def signed(r: float) -> str:  # a change that rounds to zero is +0, never -0
        if (r - 1) * 100 > MAX_CHANGE_PCT:
            return f">+{MAX_CHANGE_PCT}"
        return f"{round((r - 1) * 100, decimals) + 0.0:+.{decimals}f}"

    text = f"{signed(ratio)} %"
    if _finite(low) and _finite(high):
        assert low is not None and high is not None
        text += f" [{signed(low)}, {signed(high)}]"
    return text


def co2_line(energy_j: float, carbon: Any) -> str:
    """`CO2 1.23 mg at world average 475 g/kWh, assumed (...), PUE 1`: `carbon` a
    `harness.rows.carbon.CarbonSettings`; said the same way by `measure`, the tracker,
    the callbacks and the run summary."""
    return f"CO2 {fmt_si(carbon.co2_g(energy_j), 'g')} at {carbon.describe()}"


def fmt_pp(points: float | None) -> str:
    """Percentage points with a sign: `+0.83 pp`; '–' when unknown."""
    return f"{points:+.2f} pp" if _finite(points) else MISSING


def fmt_count(value: float, unit: str = "inferences") -> str:
    """`60 k inferences`: a count with an SI prefix; '–' when unknown."""
    return MISSING if not _finite(value) else f"{fmt_si(value, '').strip()} {unit}"


def fmt_preparation(prep: Preparation | None, total: bool = False) -> str:
    """`31.2 J measured, this run` or `... from the cache` (the figure stored with the
    model when it was prepared); with `total`, the whole account (dense training
    included); '–' when not measured."""
    if prep is None or not prep.known:
        return MISSING
    energy, source = (
        (prep.total_energy_j, prep.total_source) if total else (prep.energy_j, prep.source)
    )
    where = "from the cache" if prep.origin == ORIGIN_CACHE else "this run"
    return f"{fmt_si(energy, 'J')} {source_label(source)}, {where}"


def fmt_break_even(be: BreakEven | None) -> str:
    """`after 60 k inferences [50 k, 75 k]`, `never (saves nothing beyond noise)`, or '–'
    with why."""
    if be is None:
        return MISSING
    if be.never:
        return f"{NEVER} ({be.note})"
    if not _finite(be.inferences):
        return f"{MISSING} ({be.note})" if be.note else MISSING
    low, high = (fmt_si(v, "").strip() for v in (be.ci95_low, be.ci95_high))
    return f"after {fmt_count(be.inferences)} [{low}, {high}]"


def short_variant(label: str) -> str:
    """`magnitude[sparsity=0.9]` -> `magnitude sparsity=0.9`: a variant label that wraps at
    spaces, never inside a name."""
    name, _, params = label.partition("[")
    params = params.removesuffix("]")
    return f"{name} {params.replace(',', ' ')}" if params else name


def fmt_number(value: float, digits: str = ".3g", suffix: str = "") -> str:
    """`value` with a format spec; '–' for NaN."""
    return f"{value:{digits}}{suffix}" if math.isfinite(value) else MISSING


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def mpl_text(text: str) -> str:
    """Text for matplotlib: '$' would start mathtext (and could fail to parse)."""
    return text.replace("$", r"\$")


def short_case_labels(case_ids: Iterable[str]) -> dict[str, str]:
    """Each case id -> the parts of it that differ between the cases, variant shortened:
    `lenet5/magnitude[sparsity=0.9]/inference/bs64/cpu` among other lenet5 bs64 cpu cases
    -> `magnitude sparsity=0.9 inference`. Ids of another shape are kept whole."""
    ids = list(dict.fromkeys(case_ids))
    split = {c: split_case_id(c) for c in ids}
    parsed = [p for p in split.values() if p]
    varying = [
        part
        for part in CASE_ID_PARTS
        if part in ("variant", "mode") or len({p[part] for p in parsed}) > 1
    ]
    labels = {}
    for case_id, parts in split.items():
        if not parts:
            labels[case_id] = case_id
            continue
        shown = [short_variant(parts[p]) if p == "variant" else parts[p] for p in varying]
        labels[case_id] = " ".join(shown)
    return labels
