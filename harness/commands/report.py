"""`report` and `compare`: look at finished runs.

Heavy modules (matplotlib, scipy) are imported inside the commands so that
`energy-harness --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.commands.common import err_console, user_errors
from harness.measure.sources import source_label
from harness.report.format import fmt_change, fmt_si, short_case_labels
from harness.report.terminal import compact_table
from harness.rows.rundir import in_progress_note

if TYPE_CHECKING:
    from harness.report.compare import CaseComparison, VerdictPair
    from harness.rows.vs_dense import VsDense

console = Console(emoji=False)


@user_errors
def report_command(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory (results/<run-id>).")
    ],
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the report in a web browser.")
    ] = False,
) -> None:
    """Write RUN_DIR/report.html (self-contained, plots embedded); print its path last."""
    from harness.report.page import write_report

    _warn_in_progress(run_dir)
    path = write_report(run_dir)
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    print(path)


@user_errors
def compare_command(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="The baseline run directory (A).")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="The run to compare with it (B).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Per-case ratio B/A of measured energy per sample, with a 95% CI and Welch's p over
    the worker processes of each run.

    `*` marks a significant change: p < 0.05 after Holm's correction for the number of
    cases tested, in a case neither run marks unstable. The unit is the process (each
    starts in its own machine state), so two runs of one suite are not called different
    for what their windows share. A case measured in one process on a side gets the
    smallest change it could detect instead of a p-value. Each side's source (measured or
    MODELLED) is shown beside the ratio; runs that differ in precision, probes, machine
    or suite say so first.
    """
    from harness.report.compare import compare_runs, run_differences, verdict_pairs

    for run_dir in (run_a, run_b):
        _warn_in_progress(run_dir)
    rows = compare_runs(run_a, run_b)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows]))
        return
    for difference in run_differences(run_a, run_b):
        _line(f"note: {difference}")
    console.print(compare_table(rows, run_a, run_b))
    pairs = verdict_pairs(run_a, run_b)
    if pairs:
        console.print()
        console.print(verdict_table(pairs))
    labels = short_case_labels(r.case_id for r in rows)
    for r in rows:
        if r.note:
            _line(f"note: {labels[r.case_id]}: {r.note}")
    for r in rows:
        for run, why in (("A", r.unstable_a), ("B", r.unstable_b)):
            if why:
                _line(f"warning: {r.case_id} is unstable in run {run}: {why}")


def _warn_in_progress(run_dir: Path) -> None:
    note = in_progress_note(run_dir)
    if note is not None:
        err_console.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)


def _line(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def compare_table(rows: list[CaseComparison], run_a: Path, run_b: Path) -> Table:
    """The compare table, readable at 80 columns: short case labels, the ratio with its
    interval in one cell, each side's source in the heading when all cases share it (else
    beside the ratio); notes are printed below it."""
    from harness.report.compare import ALPHA, CI_METHOD

    tested = sum(r.p_value is not None for r in rows)
    pairs = {(r.source_a, r.source_b) for r in rows if r.source_a and r.source_b}
    shared = pairs.pop() if len(pairs) == 1 else None
    sides = f"A {source_label(shared[0])}, B {source_label(shared[1])}; " if shared else ""
    table = compact_table(
        f"energy per sample, B / A\nA = {run_a}\nB = {run_b}",
        f"{sides}n = processes; * = p < {ALPHA} (Welch's t-test on process means, "
        f"Holm-adjusted for {tested} cases) in a case stable in both runs; 95% CI: {CI_METHOD}",
    )
    table.add_column("case", overflow="fold")
    for column in ("A (n)", "B (n)", "B/A [95% CI]", "p Holm", ""):
        table.add_column(column, justify="right", no_wrap=True)
    if shared is None:
        table.add_column("source A / B")
    labels = short_case_labels(r.case_id for r in rows)
    for r in rows:
        cells = _comparison_cells(r)
        table.add_row(
            Text(labels[r.case_id]), *(Text(c) for c in cells[:5]), *cells[5 : 5 + (not shared)]
        )
    return table


def verdict_table(pairs: list[VerdictPair]) -> Table:
    """Each variant vs dense in A and in B, and whether the verdict held."""
    table = compact_table(
        "vs dense in each run: does the verdict hold?",
        "in B's CI: A's ratio lies in B's 95 % interval (and the other way); verdict: "
        "beyond noise (- saves, + costs) or ~ (within noise or not judged) in A / in B",
    )
    table.add_column("case", overflow="fold")
    for column in ("A [95% CI]", "B [95% CI]", "in B's CI / in A's", "verdict"):
        table.add_column(column, justify="right", no_wrap=True)
    labels = short_case_labels(p.case_id for p in pairs)

    def verdict(v: VsDense) -> str:
        return ("-" if v.energy_ratio < 1 else "+") if v.beyond_noise else "~"

    for p in pairs:
        table.add_row(
            Text(labels[p.case_id]),
            fmt_change(p.a.energy_ratio, p.a.ratio_ci95_low, p.a.ratio_ci95_high),
            fmt_change(p.b.energy_ratio, p.b.ratio_ci95_low, p.b.ratio_ci95_high),
            f"{'yes' if p.a_in_b else 'NO'} / {'yes' if p.b_in_a else 'NO'}",
            f"{verdict(p.a)} / {verdict(p.b)}" + ("" if p.same_verdict else " CHANGED"),
        )
    return table


def _comparison_cells(r: CaseComparison) -> tuple[str, ...]:
    """A, B, ratio [CI], p, mark, and each side's source."""
    ratio = f"{r.ratio_b_over_a:.3f}" if r.ratio_b_over_a is not None else "–"
    if r.ratio_ci95_low is not None and r.ratio_ci95_high is not None:
        ratio += f" [{r.ratio_ci95_low:.3f}, {r.ratio_ci95_high:.3f}]"
    p = f"{r.p_value_holm:.2g}" if r.p_value_holm is not None else "–"
    sources = " / ".join(source_label(s) if s else "–" for s in (r.source_a, r.source_b))
    return (
        f"{fmt_si(r.mean_a_j_per_sample, 'J')} ({r.n_a})",
        f"{fmt_si(r.mean_b_j_per_sample, 'J')} ({r.n_b})",
        ratio,
        p,
        "*" if r.significant else "",
        sources if r.presence == "both" else "",
    )


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
