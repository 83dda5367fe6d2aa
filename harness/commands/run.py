"""`run` (the main job) and `merge`."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.commands.common import (
    CarbonIntensity,
    Country,
    PowercapRoot,
    ProbeNames,
    Pue,
    Region,
    err_console,
    user_errors,
)
from harness.commands.measure import SIGTERM_EXIT
from harness.commands.streams import stdout_closed
from harness.errors import EnergyHarnessError
from harness.prepare.cache_dir import default_cache_dir
from harness.report.terminal import print_run_summary
from harness.spec.case import Case

console = Console(emoji=False)
NOTHING_MEASURED = 3  # exit code of a run in which no case finished
PIPE_CLOSED_EXIT = 141  # as a process stopped by SIGPIPE (128 + 13)


def finished_cases(run_dir: Path) -> int:
    """How many cases of the run finished (status ok in cases.csv)."""
    from harness.rows.columns import finished
    from harness.rows.csvfile import read_rows

    return sum(finished(r) for r in read_rows(run_dir / "cases.csv"))


def print_summary(run_dir: Path) -> None:
    """The run's summary: a table per group of cases, the reasons, warnings, headline."""
    print_run_summary(run_dir, console)


_signals: list[int] = []  # the signals that stopped the run (SIGTERM: exit 143)


def _interrupt(signum: int, frame: object) -> None:
    _signals.append(signum)
    raise KeyboardInterrupt


def _refuse_changes_on_resume(given: dict[str, object]) -> None:
    """`--resume` continues a run as it was: options that would change it are refused."""
    changed = [
        "SUITE" if name == "suite" else f"--{name.replace('_', '-')}"
        for name, value in given.items()
        if value
    ]
    if changed:
        raise EnergyHarnessError(
            f"--resume continues a run as it was: {', '.join(changed)} would change it; "
            "resume with no SUITE and no run options (--powercap-root and --no-report may "
            "be given), or start a new run with them"
        )


def _interrupted(exc: KeyboardInterrupt) -> None:
    """Say what an interrupt kept and how to continue (on stderr when stdout's reader
    went away: the run then stopped after the cases in progress)."""
    where = getattr(exc, "run_dir", None)
    if stdout_closed():
        _say_on_stderr(
            "standard output was closed: the run stopped after the cases in progress; "
            + (
                f"every finished row is kept: continue with `energy-harness run --resume {where}`"
                if where is not None
                else "no run directory was made: nothing to resume"
            )
        )
        return
    if where is None:
        console.print("interrupted before a run directory was made: nothing to resume")
        return
    console.print(
        f"interrupted: every finished row is kept; continue with "
        f"`energy-harness run --resume {where}`",
        markup=False,
        soft_wrap=True,
    )
    console.print(str(where), markup=False, highlight=False)


def _say_on_stderr(message: str) -> None:
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)


SuiteArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="[SUITE]",
        help="Suite TOML file or bundled suite name (default: the default suite).",
    ),
]
ShardOption = Annotated[
    str | None, typer.Option(metavar="I/N", help="Run every N-th case: I/N, 0 <= I < N.")
]
PeerOption = Annotated[
    str | None, typer.Option(metavar="NAME", help="Also run a peer tool: codecarbon.")
]


@user_errors
def run_command(
    suite: SuiteArgument = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default results/<run-id>).")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run.")] = None,
    probe: ProbeNames = None,
    powercap_root: PowercapRoot = None,
    shard: ShardOption = None,
    country: Country = None,
    region: Region = None,
    carbon_intensity: CarbonIntensity = None,
    pue: Pue = None,
    peer: PeerOption = None,
    cache: Annotated[
        bool,
        typer.Option(
            help=f"Reuse prepared models from {default_cache_dir()} (the folder in effect: "
            "$ENERGY_HARNESS_CACHE, else results/cache)."
        ),
    ] = True,
    report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
) -> None:
    """Run a benchmark suite: measure, estimate, compare, convert to CO2; write the results."""
    from harness.run.options import RunOptions, parse_shard
    from harness.run.peer import PEERS
    from harness.run.runner import run_suite
    from harness.spec.suite import load_suite

    if peer is not None and peer not in PEERS:
        raise EnergyHarnessError(f"--peer {peer!r}: known peers: {', '.join(PEERS)}")
    if resume is not None:
        _refuse_changes_on_resume(
            {
                "suite": suite,
                "out": out,
                "probe": probe,
                "shard": shard,
                "country": country,
                "region": region,
                "carbon_intensity": carbon_intensity is not None,
                "pue": pue is not None,
                "peer": peer,
            }
        )
    options = RunOptions(
        probes=probe,
        powercap_root=powercap_root,
        shard=parse_shard(shard) if shard else None,
        country=country,
        region=region,
        carbon_intensity=carbon_intensity,
        pue=pue,
        peer=peer,
        cache=cache,
    )
    loaded = None if resume is not None else load_suite(suite)
    # Slurm and batch systems stop jobs with SIGTERM: finish like Ctrl-C, rows kept.
    signal.signal(signal.SIGTERM, _interrupt)
    measured: list[str] = []

    def case_done(case: Case, row: dict) -> None:
        measured.append(case.case_id)
        if stdout_closed():  # `run | head`: stop now that the case's rows are written
            raise KeyboardInterrupt

    try:
        run_dir = run_suite(
            loaded, options, out=out, resume=resume, console=console, on_case_done=case_done
        )
    except KeyboardInterrupt as exc:
        _interrupted(exc)
        # as a shell reports it: 141 after its reader went away (SIGPIPE), 143 after
        # SIGTERM (as `measure` exits), 130 after Ctrl-C
        if stdout_closed():
            raise typer.Exit(PIPE_CLOSED_EXIT) from None
        raise typer.Exit(SIGTERM_EXIT if signal.SIGTERM in _signals else 130) from None
    if stdout_closed():
        _say_on_stderr(f"standard output was closed; the run finished: {run_dir}")
    print_summary(run_dir)
    if report and (measured or resume is None):  # a finished run resumed is left as it is
        from harness.report.page import write_report

        console.print(f"report: {write_report(run_dir)}", markup=False)
    console.print(str(run_dir), markup=False, highlight=False)
    if not finished_cases(run_dir):
        err_console.print(
            f"no case finished: every case of {run_dir} failed or was skipped (reasons above)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(NOTHING_MEASURED)


@user_errors
def merge_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR...", help="Shard run directories.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Merged run directory.")],
) -> None:
    """Merge shard runs (from --shard I/N) into one run directory."""
    from harness.rows.merge import merge_runs

    def warn(message: str) -> None:
        err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    merged = merge_runs(run_dirs, output, warn=warn)
    print_summary(merged)
    from harness.report.page import write_report

    console.print(f"report: {write_report(merged)}", markup=False)
    console.print(str(merged), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command("run")(run_command)
    app.command("merge")(merge_command)
