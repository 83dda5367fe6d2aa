"""The report's plots, each a base64 PNG (matplotlib's Agg canvas, no global state).

Every axis says what it shows: measured, MODELLED (hollow, hatched or dashed) or
ESTIMATED.
"""

from __future__ import annotations

import base64
import io
import math
from datetime import datetime
from typing import Any

from harness.measure.sources import combine_sources, source_label
from harness.report.format import mpl_text
from harness.report.views import ESTIMATE_COLUMNS, ESTIMATE_PARTS, CaseView, pareto_front
from harness.rows.csvfile import parse_float
from harness.rows.repetitions import CaseRepetitions

MODEL_HATCH = "//"


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width_in: float, height_in: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # Agg canvas; no pyplot, no global state

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _bar_width_in(n: int) -> float:
    return min(max(8.0, 0.55 * n + 5.0), 40.0)  # room for the legend on the right


def estimate_points(cases: list[CaseView], column: str) -> list[tuple[CaseView, float, float]]:
    """(case, estimated, measured) J per sample of the finished cases with both figures:
    the two totals the estimate error compares (for the dense-hw column)."""
    points = []
    for c in cases:
        est = c.estimates_j_per_sample.get(column, math.nan)
        if c.ok and est > 0 and c.mean_j_per_sample > 0:
            points.append((c, est, c.mean_j_per_sample))
    return points


def plot_measured_vs_estimated(cases: list[CaseView]) -> str | None:
    """Log-log scatter: estimated (x) vs measured (y) energy per sample, with y = x; a
    point right of the line is an estimate above the measurement (a positive error)."""
    from matplotlib.lines import Line2D

    fig, (ax,) = _figure(7.5, 6.0)
    values: list[float] = []
    for column, (accounting, marker) in ESTIMATE_COLUMNS.items():
        points = estimate_points(cases, column)
        for hollow in (False, True):
            chosen = [(c, x, y) for c, x, y in points if c.modelled == hollow]
            xs = [x for _, x, _ in chosen]
            ys = [y for _, _, y in chosen]
            labels = [f"#{c.index}" for c, _, _ in chosen]
            if not xs:
                continue
            color = "C0" if accounting == "dense-hw" else "C1"
            ax.scatter(
                xs,
                ys,
                marker=marker,
                s=45,
                facecolors="none" if hollow else color,
                edgecolors=color,
                linewidths=1.4,
            )
            for x, y, label in zip(xs, ys, labels, strict=True):
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
            values += xs + ys
    if not values:
        return None
    low, high = min(values) / 2, max(values) * 2
    ax.plot([low, high], [low, high], color="0.4", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("ESTIMATED energy per sample (J, analytic, static part included)")
    ax.set_ylabel("measured energy per sample (J, mean over repetitions, idle included)")
    ax.set_title("measured vs estimated (right of y = x: estimate above measurement)")
    handles = [
        Line2D([], [], marker=m, linestyle="", color="C0" if a == "dense-hw" else "C1", label=a)
        for a, m in ESTIMATE_COLUMNS.values()
    ]
    handles.append(Line2D([], [], color="0.4", linestyle="--", label="y = x (estimate exact)"))
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="none",
            markeredgecolor="0.3",
            label="hollow: 'measured' figure is MODELLED (no counter)",
        )
    )
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def plot_pareto(cases: list[CaseView]) -> tuple[str | None, dict[str, list[int]]]:
    """Energy per sample vs accuracy per mode, Pareto front highlighted.

    Returns the PNG (None without points) and, per mode, the case indices on the front.
    """
    from matplotlib.ticker import NullFormatter

    usable = [c for c in cases if c.ok and c.mean_j_per_sample > 0 and math.isfinite(c.accuracy)]
    modes = sorted({c.mode for c in usable})
    fronts: dict[str, list[int]] = {}
    if not modes:
        return None, fronts
    fig, axes = _figure(6.0 * len(modes), 5.0, ncols=len(modes))
    for ax, mode in zip(axes, modes, strict=True):
        points = [c for c in usable if c.mode == mode]
        front = pareto_front([(c.index, c.mean_j_per_sample, c.accuracy) for c in points])
        fronts[mode] = front
        for c in points:
            on_front = c.index in front
            color = "C3" if on_front else "C7"
            ax.scatter(
                [c.mean_j_per_sample],
                [c.accuracy],
                s=60 if on_front else 35,
                facecolors="none" if c.modelled else color,
                edgecolors=color,
                linewidths=1.4,
                zorder=3,
            )
            ax.annotate(
                f"#{c.index}",
                (c.mean_j_per_sample, c.accuracy),
                textcoords="offset points",
                xytext=(4, 3),
                fontsize=7,
            )
        by_index = {c.index: c for c in points}
        ax.plot(
            [by_index[i].mean_j_per_sample for i in front],
            [by_index[i].accuracy for i in front],
            color="C3",
            linewidth=1.2,
            drawstyle="steps-post",
            label="Pareto front (lower energy, higher accuracy)",
        )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # narrow ranges: labels would overlap
        ax.set_xlabel("measured energy per sample (J, mean over repetitions)")
        ax.set_ylabel("accuracy (fraction)")
        ax.set_title(mpl_text(f"mode: {mode or '(none)'}"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best", title="hollow: energy MODELLED", title_fontsize=7)
    return _png(fig), fronts


def domain_means(rep: CaseRepetitions) -> dict[tuple[str, str, str], float]:
    """Mean over usable repetitions of each in_total domain's energy per sample (J)."""
    totals: dict[tuple[str, str, str], float] = {}
    for per_domain in rep.domain_energy_j_per_sample:
        for key, value in per_domain.items():
            totals[key] = totals.get(key, 0.0) + value
    n = len(rep.domain_energy_j_per_sample)
    return {key: value / n for key, value in totals.items()} if n else {}


def plot_domains(cases: list[CaseView]) -> str | None:
    """Stacked bars: mean energy per sample by in_total domain; modelled parts hatched."""
    from matplotlib.patches import Patch

    bars = [
        (c, domain_means(c.repetitions))
        for c in cases
        if c.ok and c.repetitions and c.repetitions.energy_j_per_sample
    ]
    if not bars:
        return None
    keys = sorted({key for _, means in bars for key in means}, key=lambda k: (k[1], k[0], k[2]))
    colors = {key: f"C{i % 10}" for i, key in enumerate(keys)}
    fig, (ax,) = _figure(_bar_width_in(len(bars)), 5.5)
    bottoms = [0.0] * len(bars)
    for key in keys:
        heights = [means.get(key, 0.0) for _, means in bars]
        ax.bar(
            range(len(bars)),
            heights,
            bottom=bottoms,
            color=colors[key],
            hatch=MODEL_HATCH if key[2] == "model" else None,
            edgecolor="black",
            linewidth=0.5,
        )
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for x, ((_, means), top) in enumerate(zip(bars, bottoms, strict=True)):
        source = combine_sources(key[2] for key in means)
        ax.annotate(
            source.replace("+", " + "),
            (x, top),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
            rotation=90 if len(bars) > 12 else 0,
        )
    ax.set_ylim(0, max(bottoms) * 1.2 if max(bottoms) > 0 else 1)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([mpl_text(c.label) for c, _ in bars], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("energy per sample (J, mean over repetitions)")
    ax.set_title("energy by domain per case (label above a bar = its source)")
    handles = [
        Patch(
            facecolor=colors[k],
            edgecolor="black",
            hatch=MODEL_HATCH if k[2] == "model" else None,
            label=mpl_text(f"{k[1]} ({k[0]}, {'MODELLED' if k[2] == 'model' else k[2]})"),
        )
        for k in keys
    ]
    handles.append(
        Patch(
            facecolor="white",
            edgecolor="black",
            hatch=MODEL_HATCH,
            label="hatched = MODELLED, not measured",
        )
    )
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def plot_estimate_split(cases: list[CaseView]) -> tuple[str | None, list[int]]:
    """Stacked bars of the dense-hw estimate per sample by part.

    Returns the PNG (None without data) and the indices of cases whose parts do not add
    up to `est_dense_hw_energy_j_per_sample` within 1%.
    """
    bars = [
        c
        for c in cases
        if c.ok and any(math.isfinite(v) for v in c.estimate_parts_j_per_sample.values())
    ]
    if not bars:
        return None, []
    mismatched = []
    for c in bars:
        total = sum(v for v in c.estimate_parts_j_per_sample.values() if math.isfinite(v))
        expected = c.estimates_j_per_sample.get("est_dense_hw_energy_j_per_sample", math.nan)
        if math.isfinite(expected) and abs(total - expected) > 0.01 * abs(expected):
            mismatched.append(c.index)
    fig, (ax,) = _figure(_bar_width_in(len(bars)), 5.5)
    bottoms = [0.0] * len(bars)
    for i, part in enumerate(ESTIMATE_PARTS):
        heights = [c.estimate_parts_j_per_sample.get(part, math.nan) for c in bars]
        heights = [h if math.isfinite(h) else 0.0 for h in heights]
        ax.bar(
            range(len(bars)),
            heights,
            bottom=bottoms,
            color=f"C{i}",
            edgecolor="black",
            linewidth=0.5,
            label=part,
        )
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([mpl_text(c.label) for c in bars], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("estimated energy per sample (J, analytic, dense-hw)")
    ax.set_title("analytic estimate by part (ESTIMATED, dense-hw)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig), mismatched


def timeline_seconds(rows: list[dict[str, str]]) -> list[float]:
    """Seconds of each power_timeline.csv row since the first point, from `time_utc`
    (absolute, so resumed sessions fall where they ran), else from `elapsed_s`."""
    try:
        times = [datetime.fromisoformat(row.get("time_utc") or "") for row in rows]
    except ValueError:
        return [parse_float(row.get("elapsed_s")) for row in rows]
    start = min(times, default=None)
    return [(t - start).total_seconds() for t in times] if start else []


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


def plot_timeline(rows: list[dict[str, str]]) -> str | None:
    """Power (W) over the run's real time per probe and domain; modelled lines dashed,
    peers dotted; a gap where sampling stopped (a run interrupted and resumed)."""
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
    fig, (ax,) = _figure(10.0, 4.5)
    styles = {"model": "--", "peer": ":"}
    for i, (key, (xs, ys)) in enumerate(sorted(series.items(), key=lambda kv: kv[0][1])):
        source = source_label(key[2] or "?")
        ax.plot(
            *_with_gaps(xs, ys),
            linestyle=styles.get(key[2], "-"),
            color=f"C{i % 10}",
            linewidth=1.1,
            label=mpl_text(f"{key[1]} ({key[0]}, {source})"),
        )
    ax.set_xlabel("time since the first point (s, wall clock)")
    ax.set_ylabel("power (W)")
    ax.set_title("power timeline (solid = measured, dashed = MODELLED, dotted = peer tool)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)
