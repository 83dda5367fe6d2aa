"""Run a suite: idle baseline, every case (prepare, estimate, measure), CSVs, summary.

Rows are appended as soon as they exist. Ctrl-C keeps every finished row; `--resume`
continues a run without repeating finished cases (a case interrupted half-way is
measured again, its partial rows dropped). A case that raises is recorded with its
error and the suite goes on. `--shard I/N` runs the cases whose index is I modulo N.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from harness.errors import EnergyHarnessError, error_text
from harness.measure.clock import utc_now_iso
from harness.measure.environment import environment_record
from harness.measure.meter import EnergyMeter
from harness.measure.probes import probe_statuses, select_probes
from harness.measure.timeline import PowerTimeline
from harness.prepare.cache import ModelCache
from harness.prepare.hardware import DeviceUnavailable, check_device
from harness.rows.carbon import CarbonSettings, carbon_settings
from harness.rows.cases import failed_case_row
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows, write_json
from harness.rows.rundir import create_run_dir
from harness.run.case import CaseContext, run_case
from harness.run.ddp.case import run_ddp_case
from harness.run.options import RunOptions, shard_cases
from harness.spec.case import Case
from harness.spec.suite import Suite, parse_suite
from harness.spec.variants import VariantUnsupported
from probes.base import ProbeOptions

CaseDone = Callable[[Case, dict[str, Any]], None]


def _carbon(suite: Suite, options: RunOptions) -> CarbonSettings:
    c = suite.carbon
    return carbon_settings(
        country=options.country or c.country,
        region=options.region or c.region,
        intensity_g_per_kwh=options.carbon_intensity
        if options.carbon_intensity is not None
        else c.intensity_g_per_kwh,
        pue=options.pue if options.pue is not None else (c.pue if c.pue is not None else 1.0),
    )


def _drop_unfinished_rows(run_dir: Path, finished: set[str]) -> int:
    """Rewrite measurements.csv without rows of cases that have no case row yet."""
    path = run_dir / "measurements.csv"
    rows = read_rows(path)
    keep = [r for r in rows if r["case_id"] in finished]
    if len(keep) == len(rows):
        return 0
    tmp = path.with_suffix(".csv.tmp")
    tmp.unlink(missing_ok=True)
    appender = CsvAppender(tmp, MEASUREMENT_COLUMNS)
    appender.append_many(keep)
    appender.close()
    os.replace(tmp, path)
    return len(rows) - len(keep)


def _load_resume(run_dir: Path) -> tuple[Suite, RunOptions, dict[str, Any]]:
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise EnergyHarnessError(
            f"{run_dir} is not a run directory (no run.json); give the directory that "
            "`energy-harness run` printed"
        )
    meta = json.loads(meta_path.read_text())
    suite = parse_suite((run_dir / "suite.toml").read_text(), f"{run_dir}/suite.toml")
    return suite, RunOptions.from_dict(meta["options"]), meta


def _new_run_dir(suite: Suite, options: RunOptions, out: Path | None, root: Path) -> Path:
    """A fresh run directory with the suite as written and the run's options."""
    run_dir = create_run_dir(out, root)
    (run_dir / "suite.toml").write_text(suite.text)
    write_json(
        run_dir / "run.json",
        {
            "run_id": run_dir.name,
            "suite": suite.source,
            "options": options.to_dict(),
            "started_utc": utc_now_iso(),
        },
    )
    return run_dir


def _todo(run_dir: Path, suite: Suite, options: RunOptions, console: Console | None) -> list[Case]:
    """The cases without a row in cases.csv; a half-measured case's rows are dropped."""
    finished = {r["case_id"] for r in read_rows(run_dir / "cases.csv")}
    dropped = _drop_unfinished_rows(run_dir, finished)
    todo = [c for c in shard_cases(suite.cases, options.shard) if c.case_id not in finished]
    if console is not None:
        console.print(
            f"resuming {run_dir}: {len(finished)} cases done, {len(todo)} to go"
            + (f" ({dropped} rows of an interrupted case dropped)" if dropped else ""),
            markup=False,
        )
    return todo


def _write_environment(
    run_dir: Path, resumed: bool, probe_opts: ProbeOptions, meter: EnergyMeter, extra: dict
) -> None:
    env = environment_record(probe_statuses(probe_opts), meter.probes, extra)
    name = "environment.json" if not resumed else f"environment-resume-{utc_now_iso()}.json"
    write_json(run_dir / name.replace(":", ""), env)


def _measure_idle(ctx: CaseContext, console: Console) -> None:
    idle_s = ctx.suite.settings.idle_baseline_s
    console.print(f"measuring idle power for {idle_s:g} s ...", markup=False)
    idle = ctx.meter.measure_idle(idle_s)
    console.print(
        "idle power: " + ", ".join(f"{k} {v:.2f} W" for k, v in idle.items()), markup=False
    )


def run_suite(
    suite: Suite | None,
    options: RunOptions,
    *,
    out: Path | None = None,
    resume: Path | None = None,
    console: Console | None = None,
    results_root: Path = Path("results"),
    on_case_done: CaseDone | None = None,
) -> Path:
    """Run (or resume) a suite; returns the run directory. KeyboardInterrupt propagates
    after everything finished is on disk."""
    console = console or Console()
    run_id = None
    if resume is not None:
        powercap_root = options.powercap_root
        suite, options, meta = _load_resume(Path(resume))
        options.powercap_root = powercap_root or options.powercap_root
        run_id = meta["run_id"]
    elif suite is None:
        raise EnergyHarnessError("run_suite needs a suite or a run directory to resume")
    # settings a user can get wrong are checked before a run directory is made
    carbon = _carbon(suite, options)
    probe_opts = ProbeOptions(powercap_root=options.powercap_root)
    selected = select_probes(options.probes or list(suite.settings.probes) or None, probe_opts)
    for warning in selected.warnings:  # a zone left out, a GPU hidden: said before the run
        console.print(f"warning: {warning}", markup=False, highlight=False)
    meter = EnergyMeter(selected.probes)
    run_dir = (
        Path(resume) if resume is not None else _new_run_dir(suite, options, out, results_root)
    )
    todo = _todo(run_dir, suite, options, console if resume is not None else None)
    peer = options.peer or suite.settings.peer
    _write_environment(
        run_dir,
        resume is not None,
        probe_opts,
        meter,
        {
            "carbon": carbon.to_dict(),
            "suite": suite.source,
            "suite_settings": suite.settings.to_dict(),
            "run_options": options.to_dict(),
            "peer": peer,
        },
    )
    cache = ModelCache(options.cache_dir) if options.cache else None
    ctx = CaseContext(
        run_id or run_dir.name,
        suite,
        meter,
        CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS),
        carbon,
        cache,
        peer,
    )
    _run_all(ctx, run_dir, todo, console, on_case_done)
    return run_dir


def _run_all(
    ctx: CaseContext,
    run_dir: Path,
    todo: list[Case],
    console: Console,
    on_case_done: CaseDone | None,
) -> None:
    """Idle baseline and every case, with the power timeline around them."""
    hz = ctx.suite.settings.timeline_hz
    timeline = PowerTimeline(ctx.meter.probes, hz) if hz > 0 else None
    cases_csv = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    try:
        with ctx.meter:
            if timeline is not None:
                timeline.start()
            if ctx.suite.settings.idle_baseline_s > 0 and todo:
                _measure_idle(ctx, console)
            _run_cases(ctx, todo, cases_csv, console, on_case_done)
    except KeyboardInterrupt as exc:
        exc.run_dir = run_dir  # type: ignore[attr-defined]  # for the resume hint
        raise
    finally:
        if timeline is not None:
            timeline.stop()
            timeline.write_csv(run_dir / "power_timeline.csv", append=True)
        ctx.measurements.close()
        cases_csv.close()


def run_one(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """Measure one case (single-process or distributed); its cases.csv row. Raises."""
    check_device(case.device)
    if case.mode == "ddp-training":
        return run_ddp_case(ctx, case)
    return run_case(ctx, case)


def _case_row_or_failure(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """The case's row; a skipped or failed case gives a row with its reason."""
    started = utc_now_iso()
    try:
        return run_one(ctx, case)
    except (VariantUnsupported, DeviceUnavailable) as exc:
        return failed_case_row(ctx.run_id, case, "skipped", str(exc), started)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing case is recorded; the suite goes on
        return failed_case_row(ctx.run_id, case, "failed", error_text(exc), started)


def _run_cases(
    ctx: CaseContext,
    todo: list[Case],
    cases_csv: CsvAppender,
    console: Console,
    on_case_done: CaseDone | None,
) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("cases", total=len(todo))
        ctx.log = lambda message: progress.console.print(f"  {message}", markup=False)
        for case in todo:
            progress.update(task, description=case.case_id)
            row = _case_row_or_failure(ctx, case)
            cases_csv.append(row)
            if row["status"] != "ok":
                progress.console.print(
                    f"{case.case_id}: {row['status']}: {row['error']}", markup=False
                )
            if on_case_done is not None:
                on_case_done(case, row)
            progress.advance(task)
