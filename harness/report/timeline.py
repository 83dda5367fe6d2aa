"""The power timeline plot: power per domain over the run's real time, with each case's
span (from its start to its end in cases.csv, preparation included) shaded and named."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from harness.measure.sources import source_label
from harness.report.format import mpl_text
from harness.report.plots import new_figure, to_png
from harness.rows.csvfile import parse_float


@dataclass(frozen=True)
class CaseSpan:
    """When a case ran (UTC ISO-8601 times, as in cases.csv) and its short label."""

    label: str
    started_utc: str
    finished_utc: str


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text or "")
    except ValueError:
        return None


def timeline_origin(rows: list[Mapping[str, str]]) -> datetime | None:
    """The time of the first power_timeline.csv point (None without `time_utc`)."""
    times = [_time(row.get("time_utc")) for row in rows]
    if not times or any(t is None for t in times):
        return None
    return min(t for t in times if t is not None)


def timeline_seconds(rows: list[Mapping[str, str]]) -> list[float]:
    """Seconds of each power_timeline.csv row since the first point, from `time_utc`
    (absolute, so resumed sessions fall where they ran), else from `elapsed_s`."""
    origin = timeline_origin(rows)
    if origin is None:
        return [parse_float(row.get("elapsed_s")) for row in rows]
    return [(_time(row.get("time_utc")) - origin).total_seconds() for row in rows]  # type: ignore[operator]


def _with_gaps(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Sorted by time, with a break (NaN) where sampling stopped (between sessions)."""
    order = sorted(range(len(xs)), key=xs.__getitem__)
    xs, ys = [xs[j] for j in order], [ys[j] for j in order]
    steps = sorted(b - a for a, b in zip(xs, xs[1:], strict=False))
    typical = steps[len(steps) // 2] if steps else 0.0
    out_x, out_y = xs[:1], ys[:1]
    for prev, x, y in zip(xs, xs[1:], ys[1:], strict=False):
        if typical > 0 and x - prev > 10 * typical:
            out_x.append(math.nan)
            out_y.append(math.nan)
        out_x.append(x)
        out_y.append(y)
    return out_x, out_y


def span_seconds(spans: list[CaseSpan], origin: datetime | None) -> list[tuple[str, float, float]]:
    """(label, start, end) of each span in seconds since `origin`; spans without both
    times, or a timeline without absolute times, give none."""
    if origin is None:
        return []
    out = []
    for s in spans:
        start, end = _time(s.started_utc), _time(s.finished_utc)
        if start is not None and end is not None and end > start:
            out.append((s.label, (start - origin).total_seconds(), (end - origin).total_seconds()))
    return out


def plot_timeline(rows: list[dict[str, str]], spans: list[CaseSpan] | None = None) -> str | None:
    """Power (W) over the run's real time per probe and domain; modelled lines dashed,
    peers dotted; a gap where sampling stopped (a run interrupted and resumed); each
    case's span shaded and named."""
    series: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
    for row, t in zip(rows, timeline_seconds(rows), strict=True):
        if not math.isfinite(t):
            continue
        key = (row.get("probe") or "", row.get("domain") or "", row.get("source") or "")
        xs, ys = series.setdefault(key, ([], []))
        xs.append(t)
        ys.append(parse_float(row.get("power_w")))  # NaN leaves a gap: an invalid span
    if not series:
        return None
    fig, (ax,) = new_figure(10.0, 4.8)
    styles = {"model": "--", "peer": ":"}
    for i, (key, (xs, ys)) in enumerate(sorted(series.items(), key=lambda kv: kv[0][1])):
        ax.plot(
            *_with_gaps(xs, ys),
            linestyle=styles.get(key[2], "-"),
            color=f"C{i % 10}",
            linewidth=1.1,
            label=mpl_text(f"{key[1]} ({key[0]}, {source_label(key[2] or '?')})"),
        )
    for k, (label, start, end) in enumerate(span_seconds(spans or [], timeline_origin(rows))):
        ax.axvspan(start, end, color="0.5" if k % 2 else "0.75", alpha=0.18, linewidth=0)
        ax.text(
            (start + end) / 2,
            0.06,
            mpl_text(label),
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="center",
            va="bottom",
            fontsize=7,
            clip_on=True,
            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1},
        )
    ax.set_xlabel("time since the first point (s, wall clock); shaded: one case each")
    ax.set_ylabel("power (W)")
    ax.grid(True, alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    return to_png(fig)
