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

from harness.commands.common import user_errors
from harness.measure.sources import source_label
from harness.report.format import fmt_si

if TYPE_CHECKING:
    from harness.report.compare import CaseComparison

console = Console(emoji=False)


@user_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (results/<run-id>).")],
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the report in a web browser.")
    ] = False,
) -> None:
    """Write RUN_DIR/report.html (self-contained, plots embedded); print its path last."""
    from harness.report.page import write_report

    path = write_report(run_dir)
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    print(path)


@user_errors
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="The baseline run directory (A).")],
    run_b: Annotated[Path, typer.Argument(help="The run to compare with it (B).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Per-case ratio B/A of measured energy per sample, with a 95% CI and Welch's p.

    `*` marks a significant change: p < 0.05 after Holm's correction for the number of
    cases compared, in a case neither run marks unstable. The CI is the delta method on
    log(B/A). Each side's source (measured or MODELLED) is shown beside the ratio.
    """
    from harness.report.compare import ALPHA, CI_METHOD, compare_runs

    rows = compare_runs(run_a, run_b)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows]))
        return
    tested = sum(r.p_value is not None for r in rows)
    table = Table(
        title=f"energy per sample, B / A (A = {run_a}, B = {run_b})",
        title_justify="left",
        caption=(
            f"* = p < {ALPHA} (Welch's t-test, Holm-adjusted for {tested} cases) in a case "
            f"stable in both runs; 95% CI: {CI_METHOD}"
        ),
        caption_justify="left",
    )
    head = ("case", "A mean (J/sample)", "B mean (J/sample)", "B/A", "source A / B", "95% CI")
    for column in (*head, "p (Holm)", ""):
        table.add_column(column, justify="left" if column in ("case", "source A / B") else "right")
    table.add_column("note")
    for r in rows:
        table.add_row(*(Text(c) for c in _comparison_cells(r)))
    console.print(table)
    for r in rows:
        for run, why in (("A", r.unstable_a), ("B", r.unstable_b)):
            if why:
                line = f"warning: {r.case_id} is unstable in run {run}: {why}"
                console.print(line, markup=False, highlight=False, soft_wrap=True)


def _comparison_cells(r: CaseComparison) -> tuple[str, ...]:
    """One row of the compare table, each side's source beside the ratio."""
    ratio = f"{r.ratio_b_over_a:.3f}" if r.ratio_b_over_a is not None else "–"
    ci = (
        f"{r.ratio_ci95_low:.3f}–{r.ratio_ci95_high:.3f}"
        if r.ratio_ci95_low is not None and r.ratio_ci95_high is not None
        else "–"
    )
    p = f"{r.p_value_holm:.3g}" if r.p_value_holm is not None else "–"
    sources = " / ".join(source_label(s) if s else "–" for s in (r.source_a, r.source_b))
    return (
        r.case_id,
        f"{fmt_si(r.mean_a_j_per_sample, 'J')} (n={r.n_a})",
        f"{fmt_si(r.mean_b_j_per_sample, 'J')} (n={r.n_b})",
        ratio,
        sources if r.presence == "both" else "",
        ci,
        p,
        "*" if r.significant else "",
        r.note,
    )


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
