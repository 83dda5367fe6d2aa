"""A self-contained HTML report of one run directory (plots embedded as base64 PNG).

`write_report(run_dir)` reads `measurements.csv` (required), and `cases.csv`,
`environment.json` and `power_timeline.csv` when present, and writes `report.html`.
The page opens with the headline (`harness.report.headline`), then one table per group
of cases (the variants of one model, mode, batch, device and precision, each against
dense), the plots and the environment. Every figure says where it comes from:
*measured* (hardware counter), *MODELLED* (a probe's model, no counter) or *ESTIMATED*
(the analytic E = sum E_i x C_i). The page is a Jinja2 template
(`templates/report.html.j2`) that escapes every string from the run. Missing optional
files, an empty run or a plot that cannot be drawn give a note, never a traceback. It
fits a 1000 px window without scrolling sideways, and prints on A4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.estimate.error import ESTIMATE_ERROR_DEFINITION
from harness.measure.sources import source_label
from harness.report.environment import environment_context, load_environment
from harness.report.format import (
    MISSING,
    fmt_break_even,
    fmt_change,
    fmt_interval,
    fmt_number,
    fmt_pp,
    fmt_preparation,
    fmt_si,
)
from harness.report.headline import group_title, headline_items
from harness.report.plots import (
    plot_domains,
    plot_estimate_split,
    plot_measured_vs_estimated,
    plot_pareto,
)
from harness.report.timeline import CaseSpan, plot_timeline
from harness.report.views import ESTIMATE_COLUMNS, CaseView, build_cases
from harness.rows.case_energy import case_energies
from harness.rows.csvfile import read_rows, write_atomic
from harness.rows.headline import Headline, headline
from harness.rows.repetitions import load_run_repetitions
from harness.rows.rundir import in_progress_note
from harness.spec.case import GroupKey

STATUS_CLASS = {"skipped": "skipped", "failed": "failed"}


@dataclass(frozen=True)
class Plot:
    """One plot section: a PNG, or a note saying why there is none."""

    title: str
    png: str | None = None
    note: str = ""
    caption: str = ""


def draw(title: str, make: Callable[[], str | None], empty_note: str, caption: str = "") -> Plot:
    """A plot section; a failing plot becomes a note, never a traceback."""
    try:
        png = make()
    except Exception as exc:  # a report must always be written
        return Plot(title, note=f"This plot could not be drawn ({type(exc).__name__}: {exc}).")
    return Plot(title, png, "" if png else empty_note, caption if png else "")


# --------------------------------------------------------------------------- tables


def _energy_cell(c: CaseView, like: float, shared_source: bool) -> tuple[str, str]:
    """The energy and its interval; the note below it (source, or why no interval)."""
    text = fmt_interval(
        c.mean_j_per_sample, c.ci95_low_j_per_sample, c.ci95_high_j_per_sample, "J", like=like
    )
    notes = []
    if text != MISSING and not math.isfinite(c.ci95_low_j_per_sample) and c.n == 1:
        notes.append("n=1, no CI")
    if not shared_source:
        notes.append(source_label(c.measured_source) if c.measured_source else "source unknown")
    return text, "; ".join(notes)


def _vs_cells(c: CaseView) -> tuple[str, str]:
    v = c.vs_dense
    if v is None:
        return ("reference", "") if c.variant == "dense" else (MISSING, "no dense case to compare")
    change = fmt_change(v.energy_ratio, v.ratio_ci95_low, v.ratio_ci95_high)
    return change, v.noise_words.split(":")[0]


def _accuracy_vs(c: CaseView) -> str:
    """`+0.83 pp (within noise)`: the change vs dense and McNemar's verdict, if known."""
    v = c.vs_dense
    if v is None or v.is_control:
        return ""
    verdict = {True: " (beyond noise)", False: " (within noise)", None: ""}
    return fmt_pp(v.accuracy_pp) + verdict[v.accuracy_beyond_noise]


def _row(c: CaseView, like: float, shared_source: bool) -> dict[str, Any]:
    if not c.ok:
        return {
            "variant": c.variant_label,
            "finished": False,
            "status": c.status_word,
            "status_class": STATUS_CLASS.get(c.status_word, "other"),
            "reason": c.error or "(no reason given)",
        }
    energy, energy_note = _energy_cell(c, like, shared_source)
    if math.isfinite(c.peer_j_per_sample):
        peer = f"codecarbon (peer tool): {fmt_si(c.peer_j_per_sample, 'J', like=like)}"
        energy_note = f"{energy_note}; {peer}" if energy_note else peer
    vs, noise = _vs_cells(c)
    error = "" if not math.isfinite(c.estimate_error_pct) else f"{c.estimate_error_pct:+.1f} %"
    return {
        "variant": c.variant_label,
        "finished": True,
        "accuracy": f"{c.accuracy * 100:.2f} %" if math.isfinite(c.accuracy) else MISSING,
        "accuracy_vs": _accuracy_vs(c),
        "removed": fmt_number(c.params_removed * 100, ".1f", " %"),
        "sparsity": "sparsity " + fmt_number(c.sparsity * 100, ".1f", " %"),
        "energy": energy,
        "energy_note": energy_note,
        "modelled": c.modelled,
        "vs": vs,
        "noise": noise,
        "est_dense": fmt_si(c.estimates_j_per_sample.get(_DENSE_HW, math.nan), "J"),
        "est_sparse": fmt_si(c.estimates_j_per_sample.get(_SPARSE, math.nan), "J"),
        "error": (error + " *" if c.estimate_error_computed else error) or MISSING,
        "simulated": fmt_si(c.simulated_j_per_sample, "J"),
        "simulated_note": _simulated_note(c),
        "co2": fmt_si(c.co2_g_per_1000_samples, "g"),
        **_account_cells(c),
    }


def _account_cells(c: CaseView) -> dict[str, str]:
    """What making the model cost (with dense's training, for a variant) and, for an
    inference variant, its break-even vs dense."""
    prep = c.preparation
    note = ""
    if prep is not None and prep.known and c.variant != "dense":
        note = f"with dense's training: {fmt_preparation(prep, total=True)}"
    if c.break_even is not None:
        note = "; ".join(n for n in (note, f"break-even {fmt_break_even(c.break_even)}") if n)
    if c.vs_dense is not None and c.vs_dense.is_control:
        note = "dense's model, measured again"
    return {"prepare": fmt_preparation(prep), "prepare_note": note}


_DENSE_HW, _SPARSE = list(ESTIMATE_COLUMNS)


def _simulated_note(c: CaseView) -> str:
    """`sparse-ideal 12 µJ; vs estimate +35.0 %` under a simulated figure."""
    parts = []
    if math.isfinite(c.simulated_sparse_ideal_j_per_sample):
        parts.append(f"sparse-ideal {fmt_si(c.simulated_sparse_ideal_j_per_sample, 'J')}")
    if math.isfinite(c.simulated_vs_estimate_pct):
        parts.append(f"vs estimate {c.simulated_vs_estimate_pct:+.1f} %")
    return "; ".join(parts)


def group_tables(cases: list[CaseView]) -> list[dict[str, Any]]:
    """One table per group (model, dataset, mode, batch, device, precision), variants in
    run order; one energy prefix per table, and the source said once when shared."""
    groups: dict[GroupKey, list[CaseView]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    tables = []
    for group, members in groups.items():
        finished = [c for c in members if c.ok]
        sources = {c.measured_source for c in finished}
        shared = len(sources) == 1 and "" not in sources
        like = max((c.mean_j_per_sample for c in finished), default=math.nan)
        tables.append(
            {
                "title": group_title(group),
                "energy_source": source_label(sources.pop()) if shared else "source per case",
                "rows": [_row(c, like, shared) for c in members],
                # the simulated column, only where a case of the group was simulated
                "simulated_on": ", ".join(
                    sorted({c.simulated_accelerator for c in members} - {""})
                ),
            }
        )
    return tables


# --------------------------------------------------------------------------- page


def _counts(cases: list[CaseView]) -> str:
    words: dict[str, int] = {}
    for c in cases:
        word = "finished" if c.ok else c.status_word
        words[word] = words.get(word, 0) + 1
    return f"{len(cases)} case(s): " + ", ".join(f"{n} {w}" for w, n in words.items())


def run_notes(run_dir: Path, cases: list[CaseView]) -> list[str]:
    """What the reader must know before the figures: a run still being written, missing
    files, unusable and disturbed windows, comparisons not judged, unstable cases."""
    notes = [note + "." for note in [in_progress_note(run_dir)] if note]
    if not (run_dir / "cases.csv").exists():
        notes.append("cases.csv is missing: accuracy, estimates and CO2 are not available.")
    if not cases:
        notes.append("This run has no cases yet: measurements.csv holds no rows.")
    elif not any(c.ok for c in cases):
        notes.append("No case finished (status ok): there is nothing to plot.")
    for c in cases:
        count = len(c.repetitions.unusable) if c.repetitions else 0
        if count:
            notes.append(
                f"{c.case_id}: {count} repetition(s) left out (an in-total reading was "
                "invalid, or energy or samples were missing)."
            )
        disturbed = len(c.repetitions.disturbed) if c.repetitions else 0
        if disturbed:
            notes.append(
                f"{c.case_id}: {disturbed} disturbed window(s) left out and measured again "
                "(measurements.csv: disturbed_reason)."
            )
        if c.vs_dense is not None and c.vs_dense.not_judged:
            notes.append(f"{c.case_id}: not judged: {c.vs_dense.not_judged}.")
        if c.unstable_reason:
            notes.append(f"{c.case_id} is unstable: {c.unstable_reason}.")
    return notes


def _front_caption(head: Headline, cases: list[CaseView]) -> str:
    names = {c.case_id: c.variant_label for c in cases}
    parts = [
        f"{group_title(g.group)}: " + ", ".join(names.get(i, i) for i in g.front)
        for g in head.groups
    ]
    return (
        "On the front (lowest energy first), per group: "
        + "; ".join(parts)
        + ". A point leaves the front only when another uses less energy beyond both "
        "95 % intervals and is not less accurate. Error bars: 95 % intervals."
    )


def _plots(run_dir: Path, cases: list[CaseView], head: Headline) -> list[Plot]:
    fronts = {g.group: g.front for g in head.groups}
    mismatched: list[str] = []

    def split() -> str | None:
        png, bad = plot_estimate_split(cases)
        mismatched.extend(bad)
        return png

    plots = [
        draw(
            "Energy per sample vs accuracy",
            lambda: plot_pareto(cases, fronts),
            "No finished case has both an energy per sample and an accuracy.",
            _front_caption(head, cases),
        ),
        draw(
            "Measured vs estimated energy per sample",
            lambda: plot_measured_vs_estimated(cases),
            "No finished case has both a measured and an estimated energy per sample.",
            "Right of y = x: the estimate is above the measurement. Error bars: the 95 % "
            "interval of the measured mean.",
        ),
        draw(
            "Energy by domain",
            lambda: plot_domains(cases),
            "No finished case has usable repetitions in measurements.csv.",
        ),
        draw(
            "Estimate by compute / storage / communication / static",
            split,
            "No finished case has an estimate split in cases.csv (est_dense_hw_*_j).",
        ),
    ]
    if mismatched:
        plots[-1] = Plot(
            plots[-1].title,
            plots[-1].png,
            caption="The parts do not add up to the dense-hw total (1%) for: "
            + ", ".join(mismatched),
        )
    plots.append(_timeline(run_dir, cases))
    return plots


def _timeline(run_dir: Path, cases: list[CaseView]) -> Plot:
    path = run_dir / "power_timeline.csv"
    if not path.exists():
        return Plot("Power timeline", note="No power_timeline.csv: sampling was off for this run.")
    spans = [
        CaseSpan(f"{c.variant_label}, {c.mode}", c.started_utc, c.finished_utc)
        for c in cases
        if c.ok and c.started_utc
    ]
    return draw(
        "Power timeline",
        lambda: plot_timeline(read_rows(path), spans),
        "power_timeline.csv holds no points.",
    )


def render_report(run_dir: Path) -> str:
    """The report's HTML for a run directory (raises EnergyHarnessError if it is not one)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    run_dir = Path(run_dir)
    reps, _ = load_run_repetitions(run_dir)
    case_rows = read_rows(run_dir / "cases.csv")
    cases = build_cases(case_rows, reps)
    head = headline(case_energies(case_rows, reps), case_rows)
    env, env_note = load_environment(run_dir / "environment.json")
    run_ids = {r.get("run_id", "") for r in case_rows}.union(*(r.run_ids for r in reps.values()))
    run_ids = sorted(run_ids - {""})
    jinja = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    return jinja.get_template("report.html.j2").render(
        title=f"energy-harness report: {', '.join(run_ids) or run_dir.name}",
        run_dir=str(run_dir),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        counts=_counts(cases),
        headline=headline_items(head),
        notes=run_notes(run_dir, cases),
        groups=group_tables(cases),
        error_definition=ESTIMATE_ERROR_DEFINITION[0].upper() + ESTIMATE_ERROR_DEFINITION[1:],
        plots=_plots(run_dir, cases, head),
        env_note=env_note,
        **environment_context(env, case_rows),
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
