"""`report` and `compare`: look at finished runs.

Heavy modules (matplotlib, scipy) are imported inside the commands so that
`energy-harness --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.commands.common import user_errors
from harness.report.format import fmt_si

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

    `*` marks a significant change (p < 0.05). The CI is the delta method on log(B/A).
    """
    from harness.report.compare import ALPHA, CI_METHOD, compare_runs

    rows = compare_runs(run_a, run_b)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows]))
        return
    table = Table(
        title=f"energy per sample, B / A (A = {run_a}, B = {run_b})",
        title_justify="left",
        caption=f"* = p < {ALPHA} (Welch's t-test); 95% CI: {CI_METHOD}",
        caption_justify="left",
    )
    for column in ("case", "A mean (J/sample)", "B mean (J/sample)", "B/A", "95% CI", "p", ""):
        table.add_column(column, justify="left" if column == "case" else "right")
    table.add_column("note")
    for r in rows:
        ratio = f"{r.ratio_b_over_a:.3f}" if r.ratio_b_over_a is not None else "–"
        ci = (
            f"{r.ratio_ci95_low:.3f}–{r.ratio_ci95_high:.3f}"
            if r.ratio_ci95_low is not None and r.ratio_ci95_high is not None
            else "–"
        )
        p = f"{r.p_value:.3g}" if r.p_value is not None else "–"
        cells = (
            r.case_id,
            f"{fmt_si(r.mean_a_j_per_sample, 'J')} (n={r.n_a})",
            f"{fmt_si(r.mean_b_j_per_sample, 'J')} (n={r.n_b})",
            ratio,
            ci,
            p,
            "*" if r.significant else "",
            r.note,
        )
        table.add_row(*(Text(c) for c in cells))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
