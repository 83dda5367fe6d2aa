"""The plots a reviewer reads: tick labels at any span, variants named by a legend, error
bars from the repetitions, axes that say measured or MODELLED, case spans on the timeline."""

from __future__ import annotations

import dataclasses
import math

import pytest
from report_runs import make_run

from harness.report.plots import energy_axis, new_figure, pareto_figure, scatter_figure
from harness.report.timeline import CaseSpan, span_seconds, timeline_origin
from harness.report.views import CaseView, build_cases
from harness.rows.csvfile import read_rows
from harness.rows.repetitions import load_run_repetitions


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> list[CaseView]:
    run = make_run(tmp_path_factory.mktemp("plots") / "run1")
    reps, _ = load_run_repetitions(run)
    return build_cases(read_rows(run / "cases.csv"), reps)


def visible_labels(fig, axis) -> list[str]:
    fig.canvas.draw()
    low, high = sorted(axis.get_view_interval())
    return [
        t.get_text()
        for t in axis.get_ticklabels()
        if t.get_text() and low <= t.get_position()[axis is axis.axes.yaxis] <= high
    ]


@pytest.mark.parametrize(("low", "high"), [(120e-6, 270e-6), (2e-4, 8e-3), (1.0, 1.05)])
def test_an_energy_axis_has_tick_labels_whatever_its_span(low, high):
    fig, (ax,) = new_figure(5, 4)
    ax.plot([low, high], [0, 1])
    energy_axis(ax, "x", [low, high])
    ax.set_xlim(low, high)
    labels = visible_labels(fig, ax.xaxis)
    assert len(labels) >= 2, labels
    assert all(label.endswith("J") for label in labels)  # with its SI prefix: 150 µJ


def test_the_front_plot_names_variants_with_error_bars_and_says_modelled(views):
    inference = [v for v in views if v.mode == "inference"]
    fig = pareto_figure(views, {inference[0].group: ("c4", "c3", "c1")})
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    for name in ("dense", "magnitude-90", "int8", "structured", "magnitude-50"):
        assert name in legend
    ax_inference, ax_training = fig.axes
    assert ax_inference.get_xlabel().startswith("measured energy per sample")
    assert ax_training.get_xlabel().startswith("measured + modelled energy per sample")
    # one error bar per case, as wide as its 95 % interval in cases.csv (mean +-10 %)
    bars = [c for c in ax_inference.containers if c.has_xerr]
    assert len(bars) == 4
    segments = sorted(
        tuple(sorted(seg[:, 0])) for bar in bars for seg in bar.lines[2][0].get_segments()
    )
    assert segments[0] == pytest.approx((0.72e-3, 0.88e-3))  # structured: 0.8 mJ +-10 %
    assert not [t for t in ax_inference.texts if t.get_text().startswith("#")]


def test_all_modelled_energy_says_modelled_on_the_axis(views):
    modelled = [dataclasses.replace(v, measured_source="model") for v in views]
    fig = scatter_figure(modelled)
    assert all(ax.get_ylabel().startswith("MODELLED energy per sample") for ax in fig.axes)
    assert all(ax.get_xlabel().startswith("ESTIMATED") for ax in fig.axes)


def test_case_spans_fall_where_the_cases_ran_on_the_timeline():
    rows = [{"time_utc": "2026-01-01T10:00:00+00:00"}, {"time_utc": "2026-01-01T10:01:00+00:00"}]
    spans = [
        CaseSpan("dense, inference", "2026-01-01T10:00:10+00:00", "2026-01-01T10:00:25+00:00"),
        CaseSpan("no end", "2026-01-01T10:00:30+00:00", ""),
    ]
    assert span_seconds(spans, timeline_origin(rows)) == [("dense, inference", 10.0, 25.0)]
    assert span_seconds(spans, timeline_origin([{"elapsed_s": "1"}])) == []
    assert math.isfinite(timeline_origin(rows).timestamp())
