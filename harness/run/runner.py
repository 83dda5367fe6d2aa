"""Run a suite: idle baseline, every case (prepare, estimate, measure), CSVs, summary.

Rows are appended as soon as they exist. Ctrl-C keeps every finished row; `--resume`
continues a run without repeating finished cases (a case interrupted half-way is
measured again, its partial rows dropped). A case that raises is recorded with its
error and the suite goes on. `--shard I/N` runs the cases whose index is I modulo N.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.errors import EnergyHarnessError, OutputError, error_text, is_out_of_memory
from harness.measure.clock import utc_now_iso
from harness.measure.environment import environment_record
from harness.measure.meter import EnergyMeter
from harness.measure.probes import probe_statuses, select_probes
from harness.measure.sources import source_label
from harness.measure.timeline import TIMELINE_COLUMNS, PowerPoint, PowerTimeline, timeline_row
from harness.prepare.cache import ModelCache
from harness.prepare.hardware import DeviceUnavailable, check_device
from harness.rows.carbon import CarbonSettings, carbon_settings
from harness.rows.cases import failed_case_row
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, write_atomic, write_json
from harness.rows.rundir import create_run_dir, locked_run_dir
from harness.run.case import CaseContext, run_case
from harness.run.ddp.case import run_ddp_case
from harness.run.options import RunOptions, shard_cases
from harness.run.progress import Eta, RunProgress, planned_epochs
from harness.run.resume import check_resumable, load_resume, pending_cases
from harness.spec.case import Case
from harness.spec.suite import Suite
from harness.spec.variants import VariantUnsupported
from harness.workloads.precision import PrecisionUnsupported, check_precision_supported
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


def _new_run_dir(
    suite: Suite, options: RunOptions, out: Path | None, root: Path
) -> tuple[Path, str]:
    """A fresh run directory with the suite as written and the run's options; its start.

    If these first files cannot be written, nothing is left behind."""
    run_dir = create_run_dir(out, root)
    started = utc_now_iso()
    try:
        write_atomic(run_dir / "suite.toml", suite.text)
        write_json(
            run_dir / "run.json",
            {
                "run_id": run_dir.name,
                "suite": suite.source,
                "options": options.to_dict(),
                "started_utc": started,
            },
        )
    except BaseException:
        for name in ("suite.toml", "run.json"):
            with contextlib.suppress(OSError):
                (run_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only if empty: nothing of the user's is removed
        raise
    return run_dir, started


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
    sources = {d.name: d.source for p in ctx.meter.probes for d in p.domains()}
    console.print(
        "idle power: "
        + ", ".join(f"{k} {v:.2f} W ({source_label(sources.get(k, ''))})" for k, v in idle.items()),
        markup=False,
    )


def _run_cache(options: RunOptions, console: Console) -> ModelCache | None:
    """The run's model cache; a folder this process cannot write is read only, said once."""
    if not options.cache:
        return None
    cache = ModelCache(options.cache_dir)
    problem = cache.write_problem()
    if problem is not None:
        _warn(console, f"{problem}: prepared models are read from it but not saved")
        cache.read_only = True
    return cache


@dataclass
class _Session:
    """One process's part of a run: its directory, suite, options and clock."""

    run_dir: Path
    run_id: str
    suite: Suite
    options: RunOptions
    started_utc: str
    console: Console
    resumed: bool = False


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
    """Run (or resume) a suite; returns the run directory.

    The run directory is locked while this runs (a second process gets an error naming
    this one). KeyboardInterrupt propagates after everything finished is on disk, with
    the run directory in its `run_dir` attribute; a file that cannot be written raises
    OutputError saying how to continue.
    """
    console = console or Console(emoji=False)
    if resume is not None:
        run_dir = Path(resume)
        check_resumable(run_dir)
        with _locked(run_dir, "run --resume"):
            resumed_suite, saved, meta = load_resume(run_dir)
            saved.powercap_root = options.powercap_root or saved.powercap_root
            session = _Session(
                run_dir,
                str(meta.get("run_id") or run_dir.name),
                resumed_suite,
                saved,
                str(meta.get("started_utc") or utc_now_iso()),
                console,
                resumed=True,
            )
            _run_session(session, *_checked_settings(resumed_suite, saved, console), on_case_done)
        return run_dir
    if suite is None:
        raise EnergyHarnessError("run_suite needs a suite or a run directory to resume")
    carbon, meter = _checked_settings(suite, options, console)  # before a run dir is made
    run_dir, started = _new_run_dir(suite, options, out, results_root)
    with _locked(run_dir, "run"):
        session = _Session(run_dir, run_dir.name, suite, options, started, console)
        _run_session(session, carbon, meter, on_case_done)
    return run_dir


def _checked_settings(
    suite: Suite, options: RunOptions, console: Console
) -> tuple[CarbonSettings, EnergyMeter]:
    """The carbon settings and the meter: what a user can get wrong fails here; the parts
    a probe leaves out (a zone it cannot read, a GPU it cannot measure) are said now."""
    carbon = _carbon(suite, options)
    names = options.probes or list(suite.settings.probes) or None
    selected = select_probes(names, _probe_options(options))
    for warning in selected.warnings:
        _warn(console, warning)
    return carbon, EnergyMeter(selected.probes)


@contextlib.contextmanager
def _locked(run_dir: Path, purpose: str) -> Iterator[None]:
    """The run directory's lock; an interrupt names the directory, a file that cannot be
    written once the run holds the lock says how to continue."""
    try:
        with locked_run_dir(run_dir, purpose):
            try:
                yield
            except OutputError as exc:
                raise OutputError(
                    f"{exc}; every row written so far is kept: then continue with "
                    f"`energy-harness run --resume {run_dir}`"
                ) from None
    except KeyboardInterrupt as exc:
        exc.run_dir = run_dir  # type: ignore[attr-defined]  # for the resume hint
        raise


def _probe_options(options: RunOptions) -> ProbeOptions:
    return ProbeOptions(powercap_root=options.powercap_root)


def _run_session(
    session: _Session, carbon: CarbonSettings, meter: EnergyMeter, on_case_done: CaseDone | None
) -> None:
    """Environment, cache and every case still to do, in a locked run directory."""
    suite, options, run_dir = session.suite, session.options, session.run_dir
    if session.resumed:
        todo = pending_cases(run_dir, suite, options, lambda line: _say(session.console, line))
        if not todo:
            return  # a finished run: nothing is changed
    else:
        todo = shard_cases(suite.cases, options.shard)
    peer = options.peer or suite.settings.peer
    extra = {
        "carbon": carbon.to_dict(),
        "suite": suite.source,
        "suite_settings": suite.settings.to_dict(),
        "run_options": options.to_dict(),
        "peer": peer,
    }
    _write_environment(run_dir, session.resumed, _probe_options(options), meter, extra)
    ctx = CaseContext(
        session.run_id,
        suite,
        meter,
        CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS),
        carbon,
        _run_cache(options, session.console),
        peer,
    )
    _run_all(ctx, session, todo, on_case_done)


def _timeline(
    ctx: CaseContext, session: _Session
) -> tuple[PowerTimeline | None, CsvAppender | None]:
    """The power timeline, appending to power_timeline.csv as it goes (None when off, or
    when its file cannot be written: the timeline is for plots, the rows go on)."""
    hz = ctx.suite.settings.timeline_hz
    if hz <= 0:
        return None, None
    try:
        csv_file = CsvAppender(session.run_dir / "power_timeline.csv", TIMELINE_COLUMNS)
    except OutputError as exc:
        _warn(session.console, f"no power timeline: {exc}")
        return None, None

    def sink(points: list[PowerPoint]) -> None:
        csv_file.append_many(timeline_row(p) for p in points)

    origin = datetime.fromisoformat(session.started_utc)
    return PowerTimeline(ctx.meter.probes, hz, sink=sink, origin_utc=origin), csv_file


def _warn(console: Console, message: str) -> None:
    _say(console, f"warning: {message}")


def _say(console: Console, message: str) -> None:
    """One line as it is: no markup, no emoji, no wrapping inside paths."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _run_all(
    ctx: CaseContext, session: _Session, todo: list[Case], on_case_done: CaseDone | None
) -> None:
    """Idle baseline and every case, with the power timeline around them.

    Closing files never raises, so the first error is the one that propagates; a
    timeline that could not be written is said in one line.
    """
    console = session.console
    cases_csv = timeline = timeline_csv = None
    try:
        cases_csv = CsvAppender(session.run_dir / "cases.csv", CASE_COLUMNS)
        timeline, timeline_csv = _timeline(ctx, session)
        with ctx.meter:
            if timeline is not None:
                timeline.start()
            try:
                if ctx.suite.settings.idle_baseline_s > 0 and todo:
                    _measure_idle(ctx, console)
                _run_cases(ctx, todo, cases_csv, console, on_case_done)
            finally:
                if timeline is not None:
                    timeline.stop()
    finally:
        for appender in (ctx.measurements, cases_csv, timeline_csv):
            if appender is not None:
                appender.close()
        if timeline is not None and timeline.sink_error is not None:
            _warn(console, f"the power timeline stopped: {timeline.sink_error}")


def free_memory() -> None:
    """Give memory back after a case ran out of it, so the next case can run."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def run_one(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """Measure one case (single-process or distributed); its cases.csv row. Raises."""
    check_device(case.device)
    check_precision_supported(case.precision, case.device, case.variant)
    if case.mode == "ddp-training":
        return run_ddp_case(ctx, case)
    return run_case(ctx, case)


def _case_row_or_failure(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """The case's row; a skipped or failed case gives a row with its reason."""
    started = utc_now_iso()
    try:
        return run_one(ctx, case)
    except (VariantUnsupported, DeviceUnavailable, PrecisionUnsupported) as exc:
        return failed_case_row(ctx.run_id, case, "skipped", str(exc), started)
    except (KeyboardInterrupt, SystemExit, OutputError):
        raise  # a file the run cannot write stops the run; it is not the case's failure
    except Exception as exc:  # a failing case is recorded; the suite goes on
        reason = error_text(exc)
        if is_out_of_memory(exc):
            reason = f"out of memory: {reason}"
            free_memory()
        return failed_case_row(ctx.run_id, case, "failed", reason, started)


def _run_cases(
    ctx: CaseContext,
    todo: list[Case],
    cases_csv: CsvAppender,
    console: Console,
    on_case_done: CaseDone | None,
) -> None:
    """Every case in turn under the progress bar; a case that did not finish says why."""
    s = ctx.suite.settings
    eta = Eta(planned_epochs(ctx, todo), len(todo), (s.repetitions + 2) * ctx.min_window_s)
    with RunProgress(console, eta) as progress:
        ctx.log, ctx.progress = progress.say, progress
        for case in todo:
            progress.start_case(case)
            row = _case_row_or_failure(ctx, case)
            cases_csv.append(row)
            if row["status"] != "ok":
                progress.say(f"{case.case_id}: {row['status']}: {row['error']}")
            if on_case_done is not None:
                on_case_done(case, row)
            progress.case_done()
