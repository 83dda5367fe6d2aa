"""Run a suite: idle baseline, every case (prepare, estimate, measure), CSVs, summary.

Rows are appended as soon as they exist. The single-process cases of a group are
measured together in rounds (`harness.run.group`); a `ddp-training` case as a torchrun
job of its own. Ctrl-C keeps every finished row; `--resume` continues a run at the
first unfinished round (a round measured in part is measured again). A case that raises
is recorded with its error and the suite goes on. `--shard I/N` runs every N-th group
from I.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.errors import EnergyHarnessError, OutputError
from harness.estimate.profiles import check_profile_setting
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
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS, STATUS_SKIPPED, finished
from harness.rows.csvfile import CsvAppender, write_atomic, write_json
from harness.rows.rundir import LOCK_FILE, claim_run_dir, create_run_dir, locked_run_dir
from harness.run.case import CaseContext, failure_row
from harness.run.ddp.case import run_ddp_case
from harness.run.group import run_group
from harness.run.options import RunOptions, shard_cases
from harness.run.progress import Eta, RunProgress, planned_epochs
from harness.run.resume import check_resumable, load_resume, pending_cases
from harness.run.rounds import WARMUP_S
from harness.simulate.accelerators import check_accelerator_setting
from harness.spec.case import Case
from harness.spec.suite import Suite
from harness.spec.variants import VariantUnsupported
from harness.workloads.precision import PrecisionUnsupported, check_precision_supported
from probes.base import ProbeOptions

CaseDone = Callable[[Case, dict[str, Any]], None]


def _carbon(suite: Suite, options: RunOptions) -> CarbonSettings:
    c = suite.carbon
    try:
        return carbon_settings(
            country=options.country or c.country,
            region=options.region or c.region,
            intensity_g_per_kwh=options.carbon_intensity
            if options.carbon_intensity is not None
            else c.intensity_g_per_kwh,
            pue=options.pue if options.pue is not None else (c.pue if c.pue is not None else 1.0),
        )
    except EnergyHarnessError as exc:  # a place the suite named: say its file and key
        key = "region" if options.region is None and c.region else "country"
        if getattr(options, key) is not None or getattr(c, key) is None:
            raise
        message = str(exc).replace("--carbon-intensity G_PER_KWH", "intensity_g_per_kwh")
        raise EnergyHarnessError(f"{suite.source}: carbon.{key}: {message}") from None


def _start_run_dir(run_dir: Path, suite: Suite, options: RunOptions) -> str:
    """Write the suite as written and the run's options into `run_dir`, whose lock the
    caller holds; refused if another run got there first. Returns the run's start.

    If these first files cannot be written, nothing is left behind."""
    claim_run_dir(run_dir)
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
        for name in ("suite.toml", "run.json", LOCK_FILE):
            with contextlib.suppress(OSError):
                (run_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only if empty: nothing of the user's is removed
        raise
    return started


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
    run_dir = create_run_dir(out, results_root)
    with _locked(run_dir, "run"):  # taken before the first file is written
        started = _start_run_dir(run_dir, suite, options)
        session = _Session(run_dir, run_dir.name, suite, options, started, console)
        _run_session(session, carbon, meter, on_case_done)
    return run_dir


def _checked_settings(
    suite: Suite, options: RunOptions, console: Console
) -> tuple[CarbonSettings, EnergyMeter]:
    """The carbon settings and the meter: what a user can get wrong fails here; the parts
    a probe leaves out (a zone it cannot read, a GPU it cannot measure) are said now."""
    check_profile_setting(suite.source, suite.settings.estimate_profile)
    check_accelerator_setting(suite.source, suite.settings.simulate)
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


def _devices_missing(todo: list[Case]) -> dict[str, str]:
    """device -> why it cannot run here, for the devices of `todo` that cannot."""
    missing = {}
    for device in dict.fromkeys(c.device for c in todo):
        try:
            check_device(device)
        except DeviceUnavailable as exc:
            missing[device] = str(exc)
    return missing


def _run_all(
    ctx: CaseContext, session: _Session, todo: list[Case], on_case_done: CaseDone | None
) -> None:
    """Idle baseline and every case, with the power timeline around them. A run none of
    whose cases can run here says so in one line first, and measures no idle power.

    Closing files never raises, so the first error is the one that propagates; a
    timeline that could not be written is said in one line.
    """
    console = session.console
    missing = _devices_missing(todo)
    runnable = [c for c in todo if c.device not in missing]
    if todo and not runnable:
        _say(console, f"none of the {len(todo)} cases can run here: {'; '.join(missing.values())}")
    cases_csv = timeline = timeline_csv = None
    try:
        cases_csv = CsvAppender(session.run_dir / "cases.csv", CASE_COLUMNS)
        timeline, timeline_csv = _timeline(ctx, session)
        with ctx.meter:
            for warning in ctx.meter.started_warnings:
                _warn(console, warning)
            if timeline is not None:
                timeline.start()
            try:
                if ctx.suite.settings.idle_baseline_s > 0 and runnable:
                    _measure_idle(ctx, console)
                said = set(missing.values()) if not runnable else set()
                _run_cases(ctx, todo, cases_csv, console, said, on_case_done)
            finally:
                if timeline is not None:
                    timeline.stop()
    finally:
        for appender in (ctx.measurements, cases_csv, timeline_csv):
            if appender is not None:
                appender.close()
        if timeline is not None and timeline.sink_error is not None:
            _warn(console, f"the power timeline stopped: {timeline.sink_error}")


def _groups(todo: list[Case]) -> list[list[Case]]:
    """The cases in groups measured together (`Case.group`), in the suite's order; a
    `ddp-training` case is a group of its own (each is one torchrun job)."""
    groups: dict[Any, list[Case]] = {}
    for case in todo:
        key = case.case_id if case.mode == "ddp-training" else case.group
        groups.setdefault(key, []).append(case)
    return list(groups.values())


def _ddp_row(ctx: CaseContext, case: Case) -> dict[str, Any]:
    """A `ddp-training` case's row; a skipped or failed case gives a row with its reason."""
    started = utc_now_iso()
    try:
        check_device(case.device)
        check_precision_supported(case.precision, case.device, case.variant)
        return run_ddp_case(ctx, case)
    except (VariantUnsupported, DeviceUnavailable, PrecisionUnsupported) as exc:
        return failed_case_row(ctx.run_id, case, STATUS_SKIPPED, str(exc), started)
    except (KeyboardInterrupt, SystemExit, OutputError):
        raise  # a file the run cannot write stops the run; it is not the case's failure
    except Exception as exc:  # a failing case is recorded; the suite goes on
        return failure_row(ctx.run_id, case, exc, started)


def _run_cases(
    ctx: CaseContext,
    todo: list[Case],
    cases_csv: CsvAppender,
    console: Console,
    said: set[str],
    on_case_done: CaseDone | None,
) -> None:
    """Every group in turn under the progress bar; a case that did not finish says why
    (unless that reason was said already, in `said`)."""
    s = ctx.suite.settings
    windows = len(todo) * s.repetitions
    eta = Eta(planned_epochs(ctx, todo), windows, 2 * WARMUP_S + 1.25 * ctx.min_window_s)
    with RunProgress(console, eta) as progress:
        ctx.log, ctx.progress = progress.say, progress

        done: list[tuple[Case, dict[str, Any]]] = []

        def on_row(case: Case, row: dict[str, Any]) -> None:
            cases_csv.append(row)
            if not finished(row):
                if row["error"] not in said:
                    progress.say(f"{case.case_id}: {row['status']}: {row['error']}")
                progress.skip_windows(s.repetitions)
            done.append((case, row))

        for group in _groups(todo):
            if group[0].mode == "ddp-training":
                progress.start_case(group[0])
                progress.measuring()
                row = _ddp_row(ctx, group[0])
                if finished(row):
                    progress.window_done(s.repetitions)
                on_row(group[0], row)
            else:
                run_group(ctx, group, on_row)
            # the callback hears of a group's cases once all their rows are written: a
            # stop it asks for (`run | head`) never splits the cases measured together
            for case, row in done if on_case_done is not None else ():
                on_case_done(case, row)
            done.clear()
