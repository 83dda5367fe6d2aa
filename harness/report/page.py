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

import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.estimate.error import ESTIMATE_ERROR_DEFINITION
from harness.measure.sources import source_label
from harness.report.format import esc as _esc
from harness.report.format import fmt_number as _fmt
from harness.report.format import fmt_si
from harness.report.plots import (
    plot_domains,
    plot_estimate_split,
    plot_measured_vs_estimated,
    plot_pareto,
    plot_timeline,
)
from harness.report.views import ESTIMATE_COLUMNS, CaseView, build_cases
from harness.rows.csvfile import read_rows, write_atomic
from harness.rows.repetitions import load_run_repetitions

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
        like = c.mean_j_per_sample  # the interval is asymmetric: both ends, one prefix
        low = fmt_si(c.ci95_low_j_per_sample, "J", like=like)
        text += f" ({low} – {fmt_si(c.ci95_high_j_per_sample, 'J', like=like)})"
    elif c.n == 1:
        text += " (n=1, no CI)"
    label = source_label(c.measured_source) if c.measured_source else "source unknown"
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
        "energy per sample (J), mean (95% CI), source",
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
        f"<p class='small'>{_esc(ESTIMATE_ERROR_DEFINITION[0].upper())}"
        f"{_esc(ESTIMATE_ERROR_DEFINITION[1:])} From cases.csv; * = computed here, by the "
        "same definition, because cases.csv has none. The scatter plot below shows the same "
        "two figures. CO2 = measured energy (kWh) × carbon intensity × PUE.</p>"
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


def _run_notes(run_dir: Path, cases: list[CaseView], finished: int) -> list[str]:
    """What the reader must know before the figures: missing files, unusable repetitions."""
    notes = []
    if not (run_dir / "cases.csv").exists():
        notes.append("cases.csv is missing: accuracy, estimates and CO2 are not available.")
    if not cases:
        notes.append("This run has no cases yet: measurements.csv holds no rows.")
    elif not finished:
        notes.append("No case finished (status ok): there is nothing to plot.")
    for c in cases:
        count = len(c.repetitions.unusable) if c.repetitions else 0
        if count:
            notes.append(
                f"case #{c.index}: {count} repetition(s) left out (an in-total reading was "
                "invalid, or energy or samples were missing)."
            )
        if c.unstable_reason:
            notes.append(f"case #{c.index} ({c.case_id}) is unstable: {c.unstable_reason}.")
    return notes


def _pareto_sections(cases: list[CaseView]) -> list[str]:
    fronts: dict[str, list[int]] = {}

    def pareto() -> str | None:
        png, found = plot_pareto(cases)
        fronts.update(found)
        return png

    sections = [
        _section(
            "Energy per sample vs accuracy (Pareto front)",
            pareto,
            "No finished case has both a measured energy per sample and an accuracy.",
        )
    ]
    if fronts:
        listed = "; ".join(
            f"{mode or '(none)'}: " + ", ".join(f"#{i}" for i in front)
            for mode, front in sorted(fronts.items())
        )
        sections.append(f"<p>Pareto front per mode: {_esc(listed)}</p>")
    return sections


def _estimate_split_sections(cases: list[CaseView]) -> list[str]:
    mismatched: list[int] = []

    def split() -> str | None:
        png, bad = plot_estimate_split(cases)
        mismatched.extend(bad)
        return png

    sections = [
        _section(
            "Estimate by compute / storage / communication / static",
            split,
            "No finished case has an estimate split in cases.csv (est_dense_hw_*_j).",
        )
    ]
    if mismatched:
        sections.append(
            "<p class='note'>The estimate parts do not add up to the dense-hw total (1%) for "
            + _esc(", ".join(f"#{i}" for i in mismatched))
            + ".</p>"
        )
    return sections


def _timeline_section(run_dir: Path) -> str:
    timeline_path = run_dir / "power_timeline.csv"
    if not timeline_path.exists():
        return (
            "<h2>Power timeline</h2><p class='note'>No power_timeline.csv: sampling was off "
            "for this run.</p>"
        )
    return _section(
        "Power timeline",
        lambda: plot_timeline(read_rows(timeline_path)),
        "power_timeline.csv holds no points.",
    )


def _plot_sections(run_dir: Path, cases: list[CaseView]) -> list[str]:
    return [
        _section(
            "Measured vs estimated energy per sample",
            lambda: plot_measured_vs_estimated(cases),
            "No finished case has both a measured and an estimated energy per sample.",
        ),
        *_pareto_sections(cases),
        _section(
            "Energy by domain",
            lambda: plot_domains(cases),
            "No finished case has usable repetitions in measurements.csv.",
        ),
        *_estimate_split_sections(cases),
        _timeline_section(run_dir),
    ]


def render_report(run_dir: Path) -> str:
    """The report's HTML for a run directory (raises EnergyHarnessError if it is not one)."""
    run_dir = Path(run_dir)
    reps, _ = load_run_repetitions(run_dir)
    measurement_rows = read_rows(run_dir / "measurements.csv")
    case_rows = read_rows(run_dir / "cases.csv")
    cases = build_cases(case_rows, measurement_rows, reps)
    env, env_note = _load_environment(run_dir / "environment.json")
    run_ids = sorted({r.get("run_id", "") for r in measurement_rows + case_rows} - {""})
    finished = sum(1 for c in cases if c.ok)
    title = f"energy-harness report: {', '.join(run_ids) or run_dir.name}"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = [
        f"<h1>{_esc(title)}</h1>",
        f"<p class='small'>run directory {_esc(run_dir)}; generated {generated}; "
        f"{len(cases)} case(s), {finished} finished, {len(cases) - finished} not.</p>",
        _LEGEND,
        *(f"<p class='note'>{_esc(n)}</p>" for n in _run_notes(run_dir, cases, finished)),
        "<h2>Cases</h2>",
        _cases_table(cases) if cases else "<p>No cases.</p>",
        "<h2>Failed and skipped cases</h2>",
        _failed_table(cases),
        *_plot_sections(run_dir, cases),
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
    out = run_dir / "report.html"
    write_atomic(out, render_report(run_dir))  # OutputError names the file and the cause
    return out
