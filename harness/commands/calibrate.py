"""`calibrate`: fit a machine profile to microbenchmarks or to a finished suite run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.commands.common import (
    PowercapRoot,
    ProbeNames,
    err_console,
    finite_or_none,
    probe_options,
    user_errors,
)
from harness.report.format import fmt_si

console = Console(emoji=False)


def _fit_table(fit, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("coefficient", "value", "std. error"):
        table.add_column(column, justify="left" if column == "coefficient" else "right")
    for f in fit.features:
        value = fit.coefficients[f.column]
        shown = fmt_si(value, "W") if f.part == "static" else f"{value * 1e12:.4g} pJ/{f.unit}"
        spread = fit.stderr_pct(f.column)
        table.add_row(
            f"{f.part}: {f.key} ({f.column})", shown, "" if spread is None else f"{spread:.1f} %"
        )
    return table


def _print_run_fit(result) -> None:
    from harness.measure.sources import energy_label

    loo = result.loo
    console.print(_fit_table(result.fit, f"fit on {len(loo)} cases of {result.run_dir}"))
    table = Table(
        title="leave-one-out: each case predicted by a fit on the others", title_justify="left"
    )
    columns = ["case", "measured", "fitted", "LOO predicted", "LOO error"]
    if "prior_estimate_error_pct" in loo:
        columns.append("prior estimate error")
    for column in columns:
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in loo.to_dict(orient="records"):
        cells = [
            str(row["case"]),  # a case id names the variant with its parameters
            fmt_si(row["energy_j"], "J"),
            fmt_si(row["fitted_energy_j"], "J"),
            fmt_si(row["loo_predicted_energy_j"], "J"),
            f"{row['loo_error_pct']:+.1f} %",
        ]
        if "prior_estimate_error_pct" in row:
            cells.append(f"{row['prior_estimate_error_pct']:+.1f} %")
        # Text: a case id holds [brackets] (magnitude[sparsity=0.9]), never read as markup
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
    console.print(
        f"median |LOO error| {result.median_abs_loo_error_pct:.1f} %, "
        f"in-sample RMS residual {result.fit.rms_residual_pct:.1f} %",
        markup=False,
        highlight=False,
    )
    if result.dropped:
        console.print(
            f"dropped cases without a valid energy_j: {', '.join(result.dropped)}", markup=False
        )
    if result.sources and result.sources != {"counter"}:
        console.print(f"note: energy in this run is {energy_label(result.sources)}", markup=False)
    if result.profile_path:
        console.print(f"wrote profile {result.profile_path}", markup=False, highlight=False)


def _calibrate_from(run_dir: Path, out: Path | None, as_json: bool, **fit_options: str) -> None:
    from harness.estimate.workflows import calibrate_from_run, coefficients

    result = calibrate_from_run(run_dir, out, **fit_options)
    if not as_json:
        _print_run_fit(result)
        return
    document = {
        "kind": "calibration",
        "from": str(run_dir),
        "energy_source": sorted(result.sources),
        "coefficients": coefficients(result.fit),
        "rms_residual_pct": result.fit.rms_residual_pct,
        "median_abs_loo_error_pct": result.median_abs_loo_error_pct,
        "undetermined": list(result.fit.undetermined),
        "dropped_cases": result.dropped,
        "cases": result.loo.to_dict(orient="records"),
        "profile_path": str(result.profile_path) if result.profile_path else None,
    }
    print(json.dumps(document))


def _print_machine_fit(result) -> None:
    console.print(_fit_table(result.fit, f"calibration fit ({result.label})"))
    console.print(
        f"RMS residual {result.fit.rms_residual_pct:.1f} % over {len(result.windows)} windows",
        markup=False,
    )
    if result.dropped:
        console.print(
            f"dropped windows without valid energy: {', '.join(result.dropped)}", markup=False
        )
    if result.sources != {"counter"}:
        console.print(
            f"warning: the energy fitted is {result.label}; the profile says so in every source",
            markup=False,
            highlight=False,
        )
    path = result.profile_path
    console.print(f"wrote profile {path} (use it with --profile {path})", markup=False)


def _calibrate_machine(
    probe: list[str] | None, powercap_root: Path | None, as_json: bool, **options: object
) -> None:
    from harness.estimate.workflows import calibrate_machine, coefficients
    from harness.measure.probes import load_probes

    probes = load_probes(probe, probe_options(powercap_root))

    def started(device: str, benchmarks: int) -> None:
        if not as_json:
            err_console.print(
                f"calibrating on {device} with probes {', '.join(p.name for p in probes)}: "
                f"idle + {benchmarks} microbenchmarks x {options['rounds']} rounds",
                markup=False,
            )

    def progress(row: dict[str, object]) -> None:
        if not as_json:
            err_console.print(
                f"  {row['case']}: {row['duration_s']:.2f} s, {row['energy_j']:.3f} J "
                f"({row['energy_source']})",
                markup=False,
                highlight=False,
            )

    result = calibrate_machine(probes, on_start=started, on_row=progress, **options)
    if not as_json:
        _print_machine_fit(result)
        return
    rows = [
        {k: finite_or_none(v) if isinstance(v, float) else v for k, v in r.items()}
        for r in result.fit.rows.to_dict(orient="records")
    ]
    document = {
        "kind": "calibration",
        "device": result.device,
        "energy_source": sorted(result.sources),
        "energy_label": result.label,
        "coefficients": coefficients(result.fit),
        "rms_residual_pct": result.fit.rms_residual_pct,
        "undetermined": list(result.fit.undetermined),
        "rows": rows,
        "dropped_windows": result.dropped,
        "profile_path": str(result.profile_path),
    }
    print(json.dumps(document))


@user_errors
def calibrate_command(
    probe: ProbeNames = None,
    powercap_root: PowercapRoot = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Profile file to write (default results/calibration/NAME.toml)."
        ),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Refit on a finished suite run (RUN_DIR/cases.csv) and report leave-one-out "
            "error per case, instead of running microbenchmarks.",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(metavar="DEVICE", help="cpu or cuda (default: cuda when available)."),
    ] = None,
    seconds: Annotated[float, typer.Option(help="Length of each benchmark window (s).")] = 2.0,
    idle_s: Annotated[float, typer.Option("--idle-s", help="Length of the idle window (s).")] = 2.0,
    rounds: Annotated[int, typer.Option(help="Times each benchmark is measured.")] = 2,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Name of the written profile.")
    ] = None,
    small: Annotated[
        bool, typer.Option("--small", help="Small benchmark sizes (a quick smoke run).")
    ] = False,
    target: Annotated[
        str,
        typer.Option(
            metavar="KIND", help="--from: target kind of the written profile (cpu, gpu, soc)."
        ),
    ] = "cpu",
    flops_dtype: Annotated[
        str,
        typer.Option(
            "--flops-dtype", metavar="DTYPE", help="--from: dtype of a plain `flops` column."
        ),
    ] = "fp32",
    memory_level: Annotated[
        str,
        typer.Option(
            "--memory-level", metavar="LEVEL", help="--from: memory level of the `bytes` column."
        ),
    ] = "dram",
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Fit a machine profile: microbenchmarks measured with the probes, or a finished run."""
    if from_dir is not None:
        _calibrate_from(
            from_dir,
            out,
            as_json,
            target=target,
            flops_dtype=flops_dtype,
            memory_level=memory_level,
        )
    else:
        _calibrate_machine(
            probe,
            powercap_root,
            as_json,
            device_name=device,
            out=out,
            seconds=seconds,
            idle_s=idle_s,
            rounds=rounds,
            name=name,
            small=small,
        )


def register(app: typer.Typer) -> None:
    """Add `calibrate` to the CLI."""
    app.command("calibrate")(calibrate_command)
