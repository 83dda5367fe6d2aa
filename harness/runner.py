"""Run a suite: idle baseline, every case (prepare, estimate, measure), CSVs, summary.

Rows are appended as soon as they exist. Ctrl-C keeps every finished row; `--resume`
continues a run without repeating finished cases (a case interrupted half-way is
measured again, its partial rows dropped). A case that raises is recorded with its
error and the suite goes on. `--shard I/N` runs the cases whose index is I modulo N.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from harness.carbon import CarbonSettings, carbon_settings
from harness.case_runner import (
    CaseContext,
    DeviceUnavailable,
    cache_for,
    failed_case_row,
    run_case,
)
from harness.compress import VariantUnsupported
from harness.environment import environment_record
from harness.errors import EnergyHarnessError
from harness.meter import EnergyMeter, utc_now_iso
from harness.probes_loader import load_probes, probe_statuses
from harness.results import (
    CASE_COLUMNS,
    MEASUREMENT_COLUMNS,
    CsvAppender,
    create_run_dir,
    read_rows,
    write_json,
)
from harness.suite import Case, Suite, parse_suite
from harness.timeline import PowerTimeline
from probes.base import ProbeOptions


@dataclass
class RunOptions:
    """Options of one `energy-harness run` (CLI flags; suite settings fill the rest)."""

    probes: list[str] | None = None
    powercap_root: Path | None = None
    shard: tuple[int, int] | None = None
    country: str | None = None
    region: str | None = None
    carbon_intensity: float | None = None
    pue: float | None = None
    peer: str | None = None
    cache: bool = True
    cache_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["powercap_root"] = str(self.powercap_root) if self.powercap_root else None
        out["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        return out


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N) with 0 <= I < N (Slurm: --shard $SLURM_ARRAY_TASK_ID/$N)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise EnergyHarnessError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise EnergyHarnessError(f"--shard {text}: need 0 <= I < N")
    return index, count


def shard_cases(cases: list[Case], shard: tuple[int, int] | None) -> list[Case]:
    """Every N-th case starting at I."""
    if shard is None:
        return list(cases)
    index, count = shard
    return [c for k, c in enumerate(cases) if k % count == index]


def _carbon(suite: Suite, options: RunOptions) -> CarbonSettings:
    c = suite.carbon
    return carbon_settings(
        country=options.country or c.get("country"),
        region=options.region or c.get("region"),
        intensity_g_per_kwh=options.carbon_intensity
        if options.carbon_intensity is not None
        else c.get("intensity_g_per_kwh"),
        pue=options.pue if options.pue is not None else c.get("pue", 1.0),
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
    opts = dict(meta["options"])
    for key in ("powercap_root", "cache_dir"):
        opts[key] = Path(opts[key]) if opts.get(key) else None
    if opts.get("shard"):
        opts["shard"] = tuple(opts["shard"])
    return suite, RunOptions(**opts), meta


def run_suite(
    suite: Suite | None,
    options: RunOptions,
    *,
    out: Path | None = None,
    resume: Path | None = None,
    console: Console | None = None,
    results_root: Path = Path("results"),
    on_case_done: Callable[[Case, dict[str, Any]], None] | None = None,
) -> Path:
    """Run (or resume) a suite; returns the run directory. KeyboardInterrupt propagates
    after everything finished is on disk."""
    console = console or Console()
    if resume is not None:
        run_dir = Path(resume)
        powercap_root = options.powercap_root
        suite, options, meta = _load_resume(run_dir)
        if powercap_root is not None:
            options.powercap_root = powercap_root
        run_id = meta["run_id"]
    elif suite is None:
        raise EnergyHarnessError("run_suite needs a suite or a run directory to resume")
    # settings a user can get wrong are checked before a run directory is made
    carbon = _carbon(suite, options)
    probe_opts = ProbeOptions(powercap_root=options.powercap_root)
    names = options.probes or suite.settings["probes"] or None
    probes = load_probes(names, probe_opts)
    if resume is None:
        run_dir = create_run_dir(out, results_root)
        run_id = run_dir.name
        (run_dir / "suite.toml").write_text(suite.text)
        write_json(
            run_dir / "run.json",
            {
                "run_id": run_id,
                "suite": suite.source,
                "options": options.to_dict(),
                "started_utc": utc_now_iso(),
            },
        )
    finished = {r["case_id"] for r in read_rows(run_dir / "cases.csv")}
    dropped = _drop_unfinished_rows(run_dir, finished)
    todo = [c for c in shard_cases(suite.cases, options.shard) if c.case_id not in finished]
    if resume is not None:
        console.print(
            f"resuming {run_dir}: {len(finished)} cases done, {len(todo)} to go"
            + (f" ({dropped} rows of an interrupted case dropped)" if dropped else ""),
            markup=False,
        )

    meter = EnergyMeter(probes)
    peer = options.peer or suite.settings["peer"]
    env = environment_record(
        probe_statuses(probe_opts),
        probes,
        {
            "carbon": carbon.to_dict(),
            "suite": suite.source,
            "suite_settings": suite.settings,
            "run_options": options.to_dict(),
            "peer": peer,
        },
    )
    env_name = "environment.json" if resume is None else f"environment-resume-{utc_now_iso()}.json"
    write_json(run_dir / env_name.replace(":", ""), env)
    measurements = CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS)
    cases_csv = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    timeline = (
        PowerTimeline(probes, suite.settings["timeline_hz"])
        if suite.settings["timeline_hz"] > 0
        else None
    )
    ctx = CaseContext(
        run_id,
        suite,
        meter,
        measurements,
        carbon,
        cache_for(options.cache_dir, options.cache),
        peer,
    )
    try:
        with meter:
            if timeline is not None:
                timeline.start()
            idle_s = suite.settings["idle_baseline_s"]
            if idle_s > 0 and todo:
                console.print(f"measuring idle power for {idle_s:g} s ...", markup=False)
                idle = meter.measure_idle(idle_s)
                console.print(
                    "idle power: " + ", ".join(f"{k} {v:.2f} W" for k, v in idle.items()),
                    markup=False,
                )
            _run_cases(ctx, todo, cases_csv, console, on_case_done)
    except KeyboardInterrupt as exc:
        exc.run_dir = run_dir  # type: ignore[attr-defined]  # for the resume hint
        raise
    finally:
        if timeline is not None:
            timeline.stop()
            timeline.write_csv(run_dir / "power_timeline.csv", append=True)
        measurements.close()
        cases_csv.close()
    return run_dir


def _run_cases(
    ctx: CaseContext,
    todo: list[Case],
    cases_csv: CsvAppender,
    console: Console,
    on_case_done: Callable[[Case, dict[str, Any]], None] | None,
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
            started = utc_now_iso()
            try:
                row = run_case(ctx, case)
            except (VariantUnsupported, DeviceUnavailable) as exc:
                row = failed_case_row(ctx.run_id, case, "skipped", str(exc), started)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # a failing case is recorded; the suite goes on
                last = traceback.extract_tb(exc.__traceback__)[-1]
                where = f" (at {Path(last.filename).name}:{last.lineno})"
                error = f"{type(exc).__name__}: {exc}{where}"
                row = failed_case_row(ctx.run_id, case, "failed", error, started)
            cases_csv.append(row)
            status = row["status"]
            if status != "ok":
                progress.console.print(f"{case.case_id}: {status}: {row['error']}", markup=False)
            if on_case_done is not None:
                on_case_done(case, row)
            progress.advance(task)
