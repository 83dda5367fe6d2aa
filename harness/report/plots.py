"""The report's plots, each a base64 PNG (matplotlib's Agg canvas, no global state).

Every axis says what it shows: measured, MODELLED (hollow, hatched or dashed) or
ESTIMATED. Points are named by a legend (a colour and marker per variant, the same in
every plot), never by numbers to look up; energies carry their 95 % interval as error
bars; every axis has tick labels whatever the span of its data.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Mapping
from typing import Any

from harness.measure.sources import combine_sources, is_modelled, source_label
from harness.report.format import mpl_text
from harness.report.headline import group_title
from harness.report.views import ESTIMATE_COLUMNS, ESTIMATE_PARTS, CaseView
from harness.rows.repetitions import CaseRepetitions
from harness.spec.case import GroupKey

MODEL_HATCH = "//"
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "h")
LOG_ABOVE_RATIO = 10.0  # a log axis only when the data spans more than a decade


def to_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def new_figure(width_in: float, height_in: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # Agg canvas; no pyplot, no global state

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def energy_word(cases: Iterable[CaseView]) -> str:
    """`measured`, `MODELLED` or `measured + modelled`: what the cases' energy is."""
    return source_label(combine_sources(c.measured_source for c in cases if c.measured_source))


def energy_axis(ax: Any, which: str, values: Iterable[float]) -> None:
    """Scale and tick labels of an energy axis (J): linear when the values span less than
    a decade, else logarithmic with ticks at 1, 2 and 5 x 10^k; labels with SI prefixes
    (`200 µJ`), so every span shows numbers."""
    from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter

    finite = [v for v in values if v > 0 and math.isfinite(v)]
    axis = ax.xaxis if which == "x" else ax.yaxis
    if finite and max(finite) / min(finite) > LOG_ABOVE_RATIO:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(nbins=6))
    axis.set_major_formatter(EngFormatter(unit="J", places=None, sep=" "))


def variant_styles(cases: Iterable[CaseView]) -> dict[str, tuple[str, str]]:
    """Variant label -> (colour, marker), in order of first appearance, for every plot."""
    labels = list(dict.fromkeys(c.variant_label for c in cases))
    return {v: (f"C{i % 10}", MARKERS[i % len(MARKERS)]) for i, v in enumerate(labels)}


def _variant_legend(ax_or_fig: Any, styles: Mapping[str, tuple[str, str]], extra: list) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker=m, linestyle="", color=c, label=mpl_text(v))
        for v, (c, m) in styles.items()
    ]
    ax_or_fig.legend(handles=handles + extra, fontsize=8, loc="outside lower center", ncols=4)


def _hollow_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        marker="o",
        linestyle="",
        markerfacecolor="none",
        markeredgecolor="0.3",
        label="hollow: energy MODELLED (no counter)",
    )


def _errorbar(ax: Any, c: CaseView, x: float, y: float, style: tuple[str, str], **kw: Any) -> None:
    """One point with the 95 % interval of its measured energy (x or y, as `kw` says)."""
    color, marker = style
    ax.errorbar(
        [x],
        [y],
        fmt=marker,
        color=color,
        mfc="none" if c.modelled else color,
        mec=color,
        ms=7,
        capsize=3,
        elinewidth=1,
        zorder=3,
        **kw,
    )


def _interval(c: CaseView) -> list[list[float]]:
    low, high, mean = c.ci95_low_j_per_sample, c.ci95_high_j_per_sample, c.mean_j_per_sample
    if not (math.isfinite(low) and math.isfinite(high)):
        return [[0.0], [0.0]]
    return [[mean - low], [high - mean]]


def _groups(cases: list[CaseView]) -> dict[GroupKey, list[CaseView]]:
    out: dict[GroupKey, list[CaseView]] = {}
    for c in cases:
        out.setdefault(c.group, []).append(c)
    return out


def pareto_figure(cases: list[CaseView], fronts: Mapping[GroupKey, Iterable[str]]) -> Any:
    """Energy per sample (with its 95 % interval) vs accuracy, a panel per group; the
    noise-aware front of each group (`fronts`: case ids, `harness.rows.headline`) drawn
    as a line. None without a finished case with both figures."""
    from matplotlib.lines import Line2D

    usable = [c for c in cases if c.ok and c.mean_j_per_sample > 0 and math.isfinite(c.accuracy)]
    if not usable:
        return None
    styles, groups = variant_styles(usable), _groups(usable)
    fig, axes = new_figure(max(5.0 * len(groups), 7.0), 5.2, ncols=len(groups))
    for ax, (group, points) in zip(axes, groups.items(), strict=True):
        front_ids = list(fronts.get(group, ()))
        for c in points:
            alpha = 1.0 if c.case_id in front_ids else 0.4
            style = styles[c.variant_label]
            x, y = c.mean_j_per_sample, c.accuracy * 100
            _errorbar(ax, c, x, y, style, xerr=_interval(c), alpha=alpha)
        by_id = {c.case_id: c for c in points}
        on_front = [by_id[i] for i in front_ids if i in by_id]
        ax.plot(
            [c.mean_j_per_sample for c in on_front],
            [c.accuracy * 100 for c in on_front],
            color="0.2",
            linewidth=1,
            linestyle="-",
            zorder=2,
        )
        energy_axis(ax, "x", [v for c in points for v in _bounds(c)])
        ax.set_xlabel(f"{energy_word(points)} energy per sample (mean, 95 % CI)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(mpl_text(group_title(group)), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    front_line = Line2D([], [], color="0.2", label="front (a point is dominated only beyond noise)")
    _variant_legend(fig, styles, [front_line, _hollow_handle()])
    return fig


def _bounds(c: CaseView) -> list[float]:
    values = [c.mean_j_per_sample, c.ci95_low_j_per_sample, c.ci95_high_j_per_sample]
    return [v for v in values if math.isfinite(v)]


def plot_pareto(cases: list[CaseView], fronts: Mapping[GroupKey, Iterable[str]]) -> str | None:
    fig = pareto_figure(cases, fronts)
    return None if fig is None else to_png(fig)


def estimate_points(cases: list[CaseView], column: str) -> list[tuple[CaseView, float, float]]:
    """(case, estimated, measured) J per sample of the finished cases with both figures:
    the two totals the estimate error compares (for the dense-hw column)."""
    points = []
    for c in cases:
        est = c.estimates_j_per_sample.get(column, math.nan)
        if c.ok and est > 0 and c.mean_j_per_sample > 0:
            points.append((c, est, c.mean_j_per_sample))
    return points


def scatter_figure(cases: list[CaseView]) -> Any:
    """Estimated (x) vs measured (y) energy per sample, a panel per mode, with y = x and
    the measured interval as error bars; right of the line = estimate above measurement."""
    from matplotlib.lines import Line2D

    points = {col: estimate_points(cases, col) for col in ESTIMATE_COLUMNS}
    shown = [c for pts in points.values() for c, _, _ in pts]
    if not shown:
        return None
    styles = variant_styles(shown)
    modes = list(dict.fromkeys(c.mode for c in shown))
    fig, axes = new_figure(max(5.0 * len(modes), 7.0), 5.4, ncols=len(modes))
    for ax, mode in zip(axes, modes, strict=True):
        values: list[float] = []
        for column, (_, marker) in ESTIMATE_COLUMNS.items():
            for c, x, y in (p for p in points[column] if p[0].mode == mode):
                color = styles[c.variant_label][0]
                _errorbar(ax, c, x, y, (color, marker), yerr=_interval(c))
                values += [x, *_bounds(c)]
        low, high = min(values) / 1.5, max(values) * 1.5
        ax.plot([low, high], [low, high], color="0.4", linestyle="--", linewidth=1)
        for which in ("x", "y"):
            energy_axis(ax, which, [low, high])
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel("ESTIMATED energy per sample\n(analytic, static part included)")
        mode_cases = [c for c in shown if c.mode == mode]
        ax.set_ylabel(f"{energy_word(mode_cases)} energy per sample\n(mean, 95 % CI)")
        ax.set_title(mpl_text(f"mode: {mode or '(none)'}"), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    accountings = [
        Line2D([], [], marker=m, linestyle="", color="0.3", label=f"estimate: {a}")
        for a, m in ESTIMATE_COLUMNS.values()
    ]
    accountings.append(Line2D([], [], color="0.4", linestyle="--", label="y = x (exact)"))
    _variant_legend(fig, styles, [*accountings, _hollow_handle()])
    return fig


def plot_measured_vs_estimated(cases: list[CaseView]) -> str | None:
    fig = scatter_figure(cases)
    return None if fig is None else to_png(fig)


def domain_means(rep: CaseRepetitions) -> dict[tuple[str, str, str], float]:
    """Mean over usable repetitions of each in_total domain's energy per sample (J)."""
    totals: dict[tuple[str, str, str], float] = {}
    for per_domain in rep.domain_energy_j_per_sample:
        for key, value in per_domain.items():
            totals[key] = totals.get(key, 0.0) + value
    n = len(rep.domain_energy_j_per_sample)
    return {key: value / n for key, value in totals.items()} if n else {}


def _bar_axes(labels: list[str], height_in: float = 5.0) -> tuple[Any, Any]:
    fig, (ax,) = new_figure(min(max(7.0, 0.5 * len(labels) + 4.0), 14.0), height_in)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([mpl_text(t) for t in labels], rotation=35, ha="right", fontsize=7)
    return fig, ax


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
    fig, ax = _bar_axes([c.label for c, _ in bars])
    bottoms = [0.0] * len(bars)
    for key in keys:
        heights = [means.get(key, 0.0) for _, means in bars]
        ax.bar(
            range(len(bars)),
            heights,
            bottom=bottoms,
            color=colors[key],
            hatch=MODEL_HATCH if is_modelled(key[2]) else None,
            edgecolor="black",
            linewidth=0.5,
        )
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_ylim(0, max(bottoms) * 1.1 if max(bottoms) > 0 else 1)
    energy_axis(ax, "y", [max(bottoms) or 1.0])
    ax.set_ylabel(f"{energy_word(c for c, _ in bars)} energy per sample (mean)")
    handles = [
        Patch(
            facecolor=colors[k],
            edgecolor="black",
            hatch=MODEL_HATCH if is_modelled(k[2]) else None,
            label=mpl_text(f"{k[1]} ({k[0]}, {source_label(k[2])})"),
        )
        for k in keys
    ]
    fig.legend(handles=handles, fontsize=8, loc="outside upper center", ncols=3)
    return to_png(fig)


def plot_estimate_split(cases: list[CaseView]) -> tuple[str | None, list[str]]:
    """Stacked bars of the dense-hw estimate per sample by part.

    Returns the PNG (None without data) and the labels of cases whose parts do not add
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
            mismatched.append(c.label)
    fig, ax = _bar_axes([c.label for c in bars])
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
    energy_axis(ax, "y", [max(bottoms) or 1.0])
    ax.set_ylabel("ESTIMATED energy per sample\n(analytic, dense-hw)")
    fig.legend(fontsize=8, loc="outside upper center", ncols=4)
    return to_png(fig), mismatched
