"""A self-contained HTML report of one run directory (plots embedded as base64 PNG).

`write_report(run_dir)` reads `measurements.csv` (required), and `cases.csv`,
`environment.json` and `power_timeline.csv` when present, and writes `report.html`.
Every figure says where it comes from: *measured* (hardware counter), *modelled* (a
probe's model, no counter) or *estimated* (the analytic E = sum E_i x C_i). Every
string from the run (model and variant names, errors, environment values) is
HTML-escaped. Missing optional files, an empty run or a plot that cannot be drawn give
a note in the report, never a traceback.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from harness.compare import (
    CaseRepetitions,
    load_run_repetitions,
    mean_std,
    parse_float,
)
from harness.results import read_rows

K = TypeVar("K", bound=Hashable)

ESTIMATE_COLUMNS = {
    "est_dense_hw_energy_j_per_sample": ("dense-hw", "o"),
    "est_sparse_ideal_energy_j_per_sample": ("sparse-ideal", "^"),
}
ESTIMATE_PARTS = ("compute", "storage", "communication", "static")
SOURCE_LABELS = {
    "counter": "measured",
    "model": "MODELLED",
    "counter+model": "measured + modelled",
    "peer": "peer tool",
}
MODEL_HATCH = "//"


# --------------------------------------------------------------------------- data


@dataclass
class CaseView:
    """One case as the report shows it. Energies in J per sample; NaN where unknown."""

    index: int
    case_id: str
    model: str = ""
    variant: str = ""
    mode: str = ""
    batch_size: str = ""
    device: str = ""
    status: str = ""
    error: str = ""
    in_cases_csv: bool = True
    accuracy: float = math.nan
    sparsity: float = math.nan
    measured_source: str = ""
    n: int = 0
    mean_j_per_sample: float = math.nan
    ci95_low_j_per_sample: float = math.nan
    ci95_high_j_per_sample: float = math.nan
    estimates_j_per_sample: dict[str, float] = field(default_factory=dict)
    estimate_parts_j_per_sample: dict[str, float] = field(default_factory=dict)
    estimate_error_pct: float = math.nan
    estimate_error_computed: bool = False
    co2_g_per_1000_samples: float = math.nan
    repetitions: CaseRepetitions | None = None

    @property
    def ok(self) -> bool:
        """Finished and measured: status 'ok' (or, without a cases.csv row, usable data)."""
        if self.in_cases_csv:
            return self.status.strip().lower() == "ok"
        return bool(self.repetitions and self.repetitions.energy_j_per_sample)

    @property
    def modelled(self) -> bool:
        """True when any part of the measured figure comes from a model, not a counter."""
        return "model" in self.measured_source

    @property
    def label(self) -> str:
        """A short label for plots: '#3 lenet5/magnitude-90 inference bs64'."""
        name = "/".join(p for p in (self.model, self.variant) if p) or self.case_id
        extra = " ".join(p for p in (self.mode, f"bs{self.batch_size}" if self.batch_size else ""))
        return f"#{self.index} {name} {extra}".strip()


def _source_of(sources: set[str]) -> str:
    measured = "counter" in sources
    modelled = "model" in sources
    if measured and modelled:
        return "counter+model"
    return "counter" if measured else ("model" if modelled else "")


def _mean_ci95(values: list[float]) -> tuple[float, float, float]:
    """Mean and Student-t 95% CI of the mean (CI NaN for n < 2)."""
    mean, std = mean_std(values)
    if len(values) < 2 or not math.isfinite(std):
        return mean, math.nan, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _in_total_sources(rows: list[dict[str, str]]) -> dict[str, set[str]]:
    sources: dict[str, set[str]] = {}
    for row in rows:
        if (row.get("in_total") or "").strip().lower() in ("true", "1", "yes"):
            sources.setdefault(row.get("case_id") or "", set()).add(row.get("source") or "")
    return sources


def build_cases(
    case_rows: list[dict[str, str]],
    measurement_rows: list[dict[str, str]],
    reps: dict[str, CaseRepetitions],
) -> list[CaseView]:
    """Merge cases.csv rows with measurements: cases.csv first, then measured-only cases."""
    sources = _in_total_sources(measurement_rows)
    first_row: dict[str, dict[str, str]] = {}
    for row in measurement_rows:
        first_row.setdefault(row.get("case_id") or "", row)
    views: list[CaseView] = []
    seen: set[str] = set()
    for row in case_rows:
        case_id = row.get("case_id") or ""
        if not case_id or case_id in seen:
            continue
        seen.add(case_id)
        views.append(_view_from_case_row(len(views) + 1, row, reps.get(case_id)))
    for case_id, rep in reps.items():
        if case_id in seen:
            continue
        meta = first_row.get(case_id, {})
        view = CaseView(
            index=len(views) + 1,
            case_id=case_id,
            model=meta.get("model", ""),
            variant=meta.get("variant", ""),
            mode=meta.get("mode", ""),
            batch_size=meta.get("batch_size", ""),
            device=meta.get("device", ""),
            status="not in cases.csv",
            error="measured, but cases.csv has no row for it (interrupted run?)",
            in_cases_csv=False,
            repetitions=rep,
        )
        views.append(view)
    for view in views:
        _fill_measured(view, sources.get(view.case_id, set()))
    return views


def _view_from_case_row(index: int, row: dict[str, str], rep: CaseRepetitions | None) -> CaseView:
    view = CaseView(
        index=index,
        case_id=row.get("case_id", ""),
        model=row.get("model", ""),
        variant=row.get("variant", ""),
        mode=row.get("mode", ""),
        batch_size=row.get("batch_size", ""),
        device=row.get("device", ""),
        status=row.get("status", ""),
        error=row.get("error", ""),
        accuracy=parse_float(row.get("accuracy")),
        sparsity=parse_float(row.get("sparsity")),
        measured_source=row.get("measured_source", ""),
        mean_j_per_sample=parse_float(row.get("energy_j_per_sample_mean")),
        ci95_low_j_per_sample=parse_float(row.get("energy_j_per_sample_ci95_low")),
        ci95_high_j_per_sample=parse_float(row.get("energy_j_per_sample_ci95_high")),
        estimate_error_pct=parse_float(row.get("estimate_error_pct")),
        co2_g_per_1000_samples=parse_float(row.get("co2_g_per_1000_samples")),
        repetitions=rep,
    )
    n = parse_float(row.get("n"))
    view.n = int(n) if math.isfinite(n) else 0
    for column in ESTIMATE_COLUMNS:
        view.estimates_j_per_sample[column] = parse_float(row.get(column))
    for part in ESTIMATE_PARTS:
        view.estimate_parts_j_per_sample[part] = parse_float(row.get(f"est_dense_hw_{part}_j"))
    return view


def _fill_measured(view: CaseView, sources: set[str]) -> None:
    """Fill measured figures that cases.csv lacks from the repetitions in measurements.csv."""
    values = view.repetitions.energy_j_per_sample if view.repetitions else []
    if not view.measured_source:
        view.measured_source = _source_of(sources)
    if not math.isfinite(view.mean_j_per_sample) and values:
        mean, low, high = _mean_ci95(values)
        view.mean_j_per_sample, view.ci95_low_j_per_sample, view.ci95_high_j_per_sample = (
            mean,
            low,
            high,
        )
        view.n = len(values)
    elif view.n == 0:
        view.n = len(values)
    dense = view.estimates_j_per_sample.get("est_dense_hw_energy_j_per_sample", math.nan)
    if not math.isfinite(view.estimate_error_pct) and view.mean_j_per_sample > 0:
        if math.isfinite(dense):
            view.estimate_error_pct = (dense - view.mean_j_per_sample) / view.mean_j_per_sample
            view.estimate_error_pct *= 100
            view.estimate_error_computed = True


def pareto_front(points: Sequence[tuple[K, float, float]]) -> list[K]:
    """Keys of the points no other point dominates (lower energy and higher accuracy).

    `points`: (key, energy_j_per_sample, accuracy). A point is dominated when another has
    energy <= and accuracy >=, one of them strictly. Points with a non-finite value are
    ignored. The front is returned in order of increasing energy.
    """
    finite = [p for p in points if math.isfinite(p[1]) and math.isfinite(p[2])]
    front = [
        p
        for p in finite
        if not any(q[1] <= p[1] and q[2] >= p[2] and (q[1] < p[1] or q[2] > p[2]) for q in finite)
    ]
    return [p[0] for p in sorted(front, key=lambda p: (p[1], -p[2]))]


# --------------------------------------------------------------------------- formatting


_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def fmt_si(value: float | None, unit: str, like: float | None = None) -> str:
    """A number with an SI prefix and its unit: 6.3e-05 J -> '63 µJ'; NaN -> '–'.

    `like`: pick the prefix for this magnitude instead (to write 1.9 mJ ± 0.241 mJ).
    """
    if value is None or not math.isfinite(value):
        return "–"
    scale = like if like is not None and math.isfinite(like) and like != 0 else value
    if scale == 0:
        return f"0 {unit}"
    for factor, prefix in _PREFIXES:
        if abs(scale) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _fmt(value: float, digits: str = ".3g", suffix: str = "") -> str:
    return f"{value:{digits}}{suffix}" if math.isfinite(value) else "–"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _mpl_text(text: str) -> str:
    """Text for matplotlib: '$' would start mathtext (and could fail to parse)."""
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------- plots


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


def plot_measured_vs_estimated(cases: list[CaseView]) -> str | None:
    """Log-log scatter: estimated (x) vs measured (y) energy per sample, with y = x."""
    from matplotlib.lines import Line2D

    fig, (ax,) = _figure(7.5, 6.0)
    values: list[float] = []
    for column, (accounting, marker) in ESTIMATE_COLUMNS.items():
        for hollow in (False, True):
            xs, ys, labels = [], [], []
            for c in cases:
                est = c.estimates_j_per_sample.get(column, math.nan)
                if c.ok and c.modelled == hollow and est > 0 and c.mean_j_per_sample > 0:
                    xs.append(est)
                    ys.append(c.mean_j_per_sample)
                    labels.append(f"#{c.index}")
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
    ax.set_xlabel("estimated energy per sample (J, analytic estimate)")
    ax.set_ylabel("measured energy per sample (J, mean over repetitions)")
    ax.set_title("measured vs estimated energy per sample")
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
        ax.set_title(_mpl_text(f"mode: {mode or '(none)'}"))
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
        source = _source_of({key[2] for key in means})
        label = {"counter": "counter", "model": "model", "counter+model": "counter + model"}
        ax.annotate(
            label.get(source, source or "?"),
            (x, top),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
            rotation=90 if len(bars) > 12 else 0,
        )
    ax.set_ylim(0, max(bottoms) * 1.2 if max(bottoms) > 0 else 1)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([_mpl_text(c.label) for c, _ in bars], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("energy per sample (J, mean over repetitions)")
    ax.set_title("energy by domain per case (label above a bar = its source)")
    handles = [
        Patch(
            facecolor=colors[k],
            edgecolor="black",
            hatch=MODEL_HATCH if k[2] == "model" else None,
            label=_mpl_text(f"{k[1]} ({k[0]}, {'MODELLED' if k[2] == 'model' else k[2]})"),
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
    ax.set_xticklabels([_mpl_text(c.label) for c in bars], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("estimated energy per sample (J, analytic, dense-hw)")
    ax.set_title("analytic estimate by part (ESTIMATED, dense-hw)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig), mismatched


def plot_timeline(rows: list[dict[str, str]]) -> str | None:
    """Power (W) over time per probe and domain; modelled lines dashed, peers dotted."""
    series: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
    for row in rows:
        t = parse_float(row.get("elapsed_s"))
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
        order = sorted(range(len(xs)), key=xs.__getitem__)
        source = SOURCE_LABELS.get(key[2], key[2] or "?")
        ax.plot(
            [xs[j] for j in order],
            [ys[j] for j in order],
            linestyle=styles.get(key[2], "-"),
            color=f"C{i % 10}",
            linewidth=1.1,
            label=_mpl_text(f"{key[1]} ({key[0]}, {source})"),
        )
    ax.set_xlabel("elapsed time (s)")
    ax.set_ylabel("power (W)")
    ax.set_title("power timeline (solid = measured, dashed = MODELLED, dotted = peer tool)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


# --------------------------------------------------------------------------- environment

_KEY_FACT = re.compile(
    r"cpu|gpu|driver|cuda|kernel|platform|hostname|python|torch|carbon|intensity|pue|"
    r"country|region",
    re.IGNORECASE,
)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return [(prefix, ", ".join(map(str, value)))]
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            out += _flatten(item, f"{prefix}[{i}]")
        return out
    return [(prefix, value)]


def _probe_rows(env: dict[str, Any]) -> list[dict[str, Any]]:
    """Probe statuses from environment.json: a list of dicts or a dict name -> dict."""
    probes = env.get("probes")
    if isinstance(probes, dict):
        return [
            {"name": name, **(info if isinstance(info, dict) else {"available": info})}
            for name, info in probes.items()
        ]
    if isinstance(probes, list):
        return [p for p in probes if isinstance(p, dict)]
    return []


def _environment_html(
    env: dict[str, Any] | None, env_note: str, cases: list[dict[str, str]]
) -> str:
    parts = ["<h2>Environment</h2>"]
    if env_note:
        parts.append(f'<p class="note">{_esc(env_note)}</p>')
    facts = [
        (k, v)
        for k, v in _flatten(env or {})
        if _KEY_FACT.search(k) and not k.startswith("probes") and v not in (None, "")
    ]
    carbon = {
        (c.get("carbon_intensity_g_per_kwh") or "", c.get("pue") or "")
        for c in cases
        if c.get("carbon_intensity_g_per_kwh") or c.get("pue")
    }
    for intensity, pue in sorted(carbon):
        facts.append(("cases.csv carbon intensity (g CO2eq/kWh), PUE", f"{intensity}, {pue}"))
    if facts:
        parts.append("<h3>Key facts</h3><table><tr><th>key</th><th>value</th></tr>")
        parts += [f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in facts[:40]]
        parts.append("</table>")
    probes = _probe_rows(env or {})
    if probes:
        parts.append(
            "<h3>Probes</h3><table><tr><th>probe</th><th>available</th><th>source</th>"
            "<th>domains</th><th>why not / note</th></tr>"
        )
        for p in probes:
            domains = p.get("domains", "")
            if isinstance(domains, (list, tuple)):
                domains = ", ".join(map(str, domains))
            why = p.get("reason") or p.get("why_not") or p.get("note") or ""
            parts.append(
                "<tr>"
                + "".join(
                    f"<td>{_esc(v)}</td>"
                    for v in (p.get("name", "?"), p.get("available", "?"), p.get("source", ""))
                )
                + f"<td>{_esc(domains)}</td><td>{_esc(why)}</td></tr>"
            )
        parts.append("</table>")
    if env is not None:
        text = json.dumps(env, indent=2, sort_keys=True, default=str)
        parts.append(f"<h3>environment.json</h3><pre>{_esc(text)}</pre>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- tables


def _measured_cell(c: CaseView) -> str:
    if not math.isfinite(c.mean_j_per_sample):
        return "–"
    text = fmt_si(c.mean_j_per_sample, "J")
    if math.isfinite(c.ci95_low_j_per_sample) and math.isfinite(c.ci95_high_j_per_sample):
        half = (c.ci95_high_j_per_sample - c.ci95_low_j_per_sample) / 2
        text += f" ± {fmt_si(half, 'J', like=c.mean_j_per_sample)}"
    elif c.n == 1:
        text += " (n=1, no CI)"
    label = SOURCE_LABELS.get(c.measured_source, c.measured_source or "source unknown")
    cls = "modelled" if c.modelled else "measured"
    return f'<span class="{cls}">{_esc(text)}</span><br><small>{_esc(label)}</small>'


def _cases_table(cases: list[CaseView]) -> str:
    head = (
        "#",
        "case",
        "model",
        "variant",
        "mode",
        "batch",
        "device",
        "status",
        "accuracy",
        "sparsity",
        "n",
        "energy per sample (J), mean ± 95% CI, source",
        "estimated, dense-hw (J/sample)",
        "estimated, sparse-ideal (J/sample)",
        "estimate error (%)",
        "CO2 per 1000 samples (g CO2eq, from measured energy)",
    )
    rows = ["<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>"]
    for c in cases:
        error = _fmt(c.estimate_error_pct, "+.1f")
        if c.estimate_error_computed and error != "–":
            error += " *"
        cells = [
            _esc(c.index),
            _esc(c.case_id),
            _esc(c.model),
            _esc(c.variant),
            _esc(c.mode),
            _esc(c.batch_size),
            _esc(c.device),
            f'<span class="{"ok" if c.ok else "bad"}">{_esc(c.status or "(none)")}</span>',
            _esc(_fmt(c.accuracy, ".4f")),
            _esc(_fmt(c.sparsity, ".3f")),
            _esc(c.n),
            _measured_cell(c),
            *(
                _esc(fmt_si(c.estimates_j_per_sample.get(col, math.nan), "J"))
                for col in ESTIMATE_COLUMNS
            ),
            _esc(error),
            _esc(fmt_si(c.co2_g_per_1000_samples, "g")),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    rows.append("</table>")
    rows.append(
        "<p class='small'>Estimate error = (estimated dense-hw − measured) / measured, from "
        "cases.csv; * = computed here because cases.csv has none. CO2 = measured energy "
        "(kWh) × carbon intensity × PUE.</p>"
    )
    return "\n".join(rows)


def _failed_table(cases: list[CaseView]) -> str:
    failed = [c for c in cases if not c.ok]
    if not failed:
        return "<p>Every case finished.</p>"
    rows = ["<table><tr><th>#</th><th>case</th><th>status</th><th>error</th></tr>"]
    for c in failed:
        rows.append(
            f"<tr><td>{_esc(c.index)}</td><td>{_esc(c.case_id)}</td>"
            f'<td class="bad">{_esc(c.status or "(none)")}</td>'
            f"<td><pre>{_esc(c.error or '(no error text)')}</pre></td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


# --------------------------------------------------------------------------- page

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
pre { white-space: pre-wrap; font-size: 0.85em; margin: 0; }
.note { background: #fff6d5; border-left: 4px solid #e0b000; padding: 0.4em 0.8em; }
.bad { color: #b00; font-weight: bold; }
.ok { color: #070; }
.modelled { color: #a05000; font-style: italic; }
.small, small { font-size: 0.8em; color: #555; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0 1.5em; }
"""

_LEGEND = (
    "<p><b>measured</b> = read from a hardware energy counter (RAPL, NVML). "
    "<b class='modelled'>MODELLED</b> = a probe's model where no counter exists "
    "(CPU time × TDP, RAM size), shown hatched, hollow or dashed, never as a measurement. "
    "<b>estimated</b> = the analytic model E = Σ E<sub>i</sub> × C<sub>i</sub> "
    "(dense-hw: zeros computed and moved; sparse-ideal: nonzeros only). "
    "Energies are joules per sample (J/sample).</p>"
)


def _img(png: str, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{png}">'


def _section(title: str, draw: Callable[[], str | None], empty_note: str) -> str:
    """A plot section; a failing plot becomes a note, never a traceback."""
    try:
        png = draw()
    except Exception as exc:  # a report must always be written
        return (
            f"<h2>{_esc(title)}</h2><p class='note'>This plot could not be drawn "
            f"({_esc(type(exc).__name__)}: {_esc(exc)}).</p>"
        )
    if png is None:
        return f"<h2>{_esc(title)}</h2><p class='note'>{_esc(empty_note)}</p>"
    return f"<h2>{_esc(title)}</h2>{_img(png, title)}"


def _load_environment(path: Path) -> tuple[dict[str, Any] | None, str]:
    if not path.exists():
        return None, "environment.json is missing: no environment facts for this run."
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"environment.json could not be read ({exc})."
    if not isinstance(data, dict):
        return {"environment": data}, ""
    return data, ""


def render_report(run_dir: Path) -> str:
    """The report's HTML for a run directory (raises EnergyHarnessError if it is not one)."""
    run_dir = Path(run_dir)
    reps, _ = load_run_repetitions(run_dir)
    measurement_rows = read_rows(run_dir / "measurements.csv")
    case_rows = read_rows(run_dir / "cases.csv")
    cases = build_cases(case_rows, measurement_rows, reps)
    env, env_note = _load_environment(run_dir / "environment.json")
    run_ids = sorted({r.get("run_id", "") for r in measurement_rows + case_rows} - {""})
    ok = [c for c in cases if c.ok]

    notes = []
    if not (run_dir / "cases.csv").exists():
        notes.append("cases.csv is missing: accuracy, estimates and CO2 are not available.")
    if not cases:
        notes.append("This run has no cases yet: measurements.csv holds no rows.")
    elif not ok:
        notes.append("No case finished (status ok): there is nothing to plot.")
    unusable = {c.index: len(c.repetitions.unusable) for c in cases if c.repetitions}
    for index, count in unusable.items():
        if count:
            notes.append(
                f"case #{index}: {count} repetition(s) left out (an in-total reading was "
                "invalid, or energy or samples were missing)."
            )

    pareto_fronts: dict[str, list[int]] = {}
    mismatched: list[int] = []

    def pareto() -> str | None:
        png, fronts = plot_pareto(cases)
        pareto_fronts.update(fronts)
        return png

    def split() -> str | None:
        png, bad = plot_estimate_split(cases)
        mismatched.extend(bad)
        return png

    timeline_path = run_dir / "power_timeline.csv"
    sections = [
        _section(
            "Measured vs estimated energy per sample",
            lambda: plot_measured_vs_estimated(cases),
            "No finished case has both a measured and an estimated energy per sample.",
        ),
        _section(
            "Energy per sample vs accuracy (Pareto front)",
            pareto,
            "No finished case has both a measured energy per sample and an accuracy.",
        ),
    ]
    if pareto_fronts:
        listed = "; ".join(
            f"{mode or '(none)'}: " + ", ".join(f"#{i}" for i in front)
            for mode, front in sorted(pareto_fronts.items())
        )
        sections.append(f"<p>Pareto front per mode: {_esc(listed)}</p>")
    sections.append(
        _section(
            "Energy by domain",
            lambda: plot_domains(cases),
            "No finished case has usable repetitions in measurements.csv.",
        )
    )
    sections.append(
        _section(
            "Estimate by compute / storage / communication / static",
            split,
            "No finished case has an estimate split in cases.csv (est_dense_hw_*_j).",
        )
    )
    if mismatched:
        sections.append(
            "<p class='note'>The estimate parts do not add up to the dense-hw total (1%) for "
            + _esc(", ".join(f"#{i}" for i in mismatched))
            + ".</p>"
        )
    if timeline_path.exists():
        sections.append(
            _section(
                "Power timeline",
                lambda: plot_timeline(read_rows(timeline_path)),
                "power_timeline.csv holds no points.",
            )
        )
    else:
        sections.append(
            "<h2>Power timeline</h2><p class='note'>No power_timeline.csv: sampling was off "
            "for this run.</p>"
        )

    title = f"energy-harness report: {', '.join(run_ids) or run_dir.name}"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = [
        f"<h1>{_esc(title)}</h1>",
        f"<p class='small'>run directory {_esc(run_dir)}; generated {generated}; "
        f"{len(cases)} case(s), {len(ok)} finished, {len(cases) - len(ok)} not.</p>",
        _LEGEND,
        *(f"<p class='note'>{_esc(n)}</p>" for n in notes),
        "<h2>Cases</h2>",
        _cases_table(cases) if cases else "<p>No cases.</p>",
        "<h2>Failed and skipped cases</h2>",
        _failed_table(cases),
        *sections,
        _environment_html(env, env_note, case_rows),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(run_dir: Path) -> Path:
    """Write `run_dir/report.html` (self-contained) and return its path.

    Raises EnergyHarnessError when `run_dir` or its measurements.csv is missing; any other
    missing file, or a run without finished cases, gives a note in the report instead.
    """
    run_dir = Path(run_dir)
    text = render_report(run_dir)
    out = run_dir / "report.html"
    tmp = run_dir / ".report.html.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
