"""Merge shard run directories (`--shard I/N`) into one run directory.

The merged directory is written under a temporary name next to `out` and renamed into
place at the end: a merge that fails leaves nothing behind, and two merges into one
`out` cannot mix (the second finds it taken). Each shard is read under its shared lock,
so a shard still being written is refused.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError, OutputError, output_error
from harness.measure.clock import utc_now_iso
from harness.measure.timeline import TIMELINE_COLUMNS
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS, finished
from harness.rows.csvfile import CsvAppender, iter_rows, read_rows, write_atomic, write_json
from harness.rows.rundir import locked_run_dir
from harness.spec.suite import parse_suite

Warn = Callable[[str], None]
COPY_BATCH_ROWS = 2000  # rows appended (and fsynced) at once while copying a shard's file


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def merge_runs(run_dirs: list[Path], out: Path, warn: Warn = _warn) -> Path:
    """Combine shards: every case once (a case in two shards is an error), all their rows.

    Shards must have run the same suite (their suite.toml); cases of the suite that no
    shard holds are passed to `warn`. Returns `out`.
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise EnergyHarnessError("merge needs at least one run directory")
    for run_dir in run_dirs:
        if not (run_dir / "cases.csv").is_file():
            raise EnergyHarnessError(f"{run_dir} has no cases.csv: not a finished run directory")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _taken(out)
    suite_text = _one_suite(run_dirs)
    work = out.with_name(f".{out.name}.merging-{os.getpid()}")
    try:
        work.mkdir(parents=True)
        with contextlib.ExitStack() as locks:
            for run_dir in run_dirs:
                locks.enter_context(locked_run_dir(run_dir, "merge", shared=True))
            case_ids = _merge_rows(run_dirs, work)
            _merge_records(run_dirs, work, out.name, suite_text)
        os.rename(work, out)  # an empty `out` is replaced; one that holds files refuses
    except OutputError as exc:  # name the directory the user asked for
        raise OutputError(str(exc).replace(str(work), str(out))) from None
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise _taken(out) from None
        raise output_error(out, exc) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _warn_missing(run_dirs, suite_text, case_ids, warn)
    return out


def _taken(out: Path) -> EnergyHarnessError:
    return EnergyHarnessError(f"-o {out} already holds files; choose a new directory")


def _one_suite(run_dirs: list[Path]) -> str | None:
    """The suite.toml text the shards share (None when none has one); raises otherwise."""
    texts = {
        d: (d / "suite.toml").read_text(encoding="utf-8")
        for d in run_dirs
        if (d / "suite.toml").is_file()
    }
    if not texts:
        return None
    missing = [d for d in run_dirs if d not in texts]
    if missing:
        raise EnergyHarnessError(
            f"{missing[0]} has no suite.toml: cannot tell whether it ran the same suite "
            "as the others; merge shards of one suite"
        )
    first = run_dirs[0]
    for run_dir, text in texts.items():
        if text != texts[first]:
            raise EnergyHarnessError(
                f"{first} and {run_dir} ran different suites (their suite.toml differ); "
                "merge shards of one suite"
            )
    return texts[first]


def _merge_rows(run_dirs: list[Path], work: Path) -> set[str]:
    """cases.csv, measurements.csv and power_timeline.csv of every shard; the case ids."""
    seen: dict[str, Path] = {}
    cases = CsvAppender(work / "cases.csv", CASE_COLUMNS)
    measurements = CsvAppender(work / "measurements.csv", MEASUREMENT_COLUMNS)
    timeline = None
    try:
        for run_dir in run_dirs:
            rows = read_rows(run_dir / "cases.csv")
            for row in rows:
                if row["case_id"] in seen:
                    raise EnergyHarnessError(
                        f"case {row['case_id']} is in both {seen[row['case_id']]} and "
                        f"{run_dir}: merge shards of one suite, each once"
                    )
                seen[row["case_id"]] = run_dir
            if rows:
                _known(rows[0], CASE_COLUMNS, run_dir / "cases.csv")
            cases.append_many(rows)
            finished = {row["case_id"] for row in rows}
            path = run_dir / "measurements.csv"
            measured: set[str] = set()
            for batch in _batches(
                path, MEASUREMENT_COLUMNS, lambda r, f=finished: r["case_id"] in f
            ):
                measured.update(r["case_id"] for r in batch)
                measurements.append_many(batch)
            _check_measured(run_dir, rows, measured)
            for batch in _batches(run_dir / "power_timeline.csv", TIMELINE_COLUMNS):
                timeline = timeline or CsvAppender(work / "power_timeline.csv", TIMELINE_COLUMNS)
                timeline.append_many(batch)
    finally:
        for appender in (cases, measurements, timeline):
            if appender is not None:
                appender.close()
    return set(seen)


def _check_measured(run_dir: Path, rows: list[dict[str, str]], measured: set[str]) -> None:
    """Raise when a case that finished (`ok` in cases.csv) has no row in measurements.csv:
    the shard lost that file, or part of it."""
    lost = [r["case_id"] for r in rows if finished(r) and r["case_id"] not in measured]
    if not lost:
        return
    path = run_dir / "measurements.csv"
    what = f"{path} has no rows" if path.is_file() else f"{run_dir} has no measurements.csv"
    raise EnergyHarnessError(
        f"{what} for {len(lost)} finished case(s) of its cases.csv (first: {lost[0]}): "
        "restore that file from the shard, or merge without this shard"
    )


def _batches(
    path: Path, columns: list[str], keep: Callable[[dict[str, str]], bool] = lambda r: True
) -> Iterator[list[dict[str, str]]]:
    """The rows of `path` that `keep` accepts, COPY_BATCH_ROWS at a time (a large file is
    never held whole). Raises when the file has a column this version does not know."""
    batch: list[dict[str, str]] = []
    checked = False
    for row in iter_rows(path):
        if not checked:
            _known(row, columns, path)
            checked = True
        if keep(row):
            batch.append(row)
        if len(batch) == COPY_BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _known(row: dict[str, str], columns: list[str], path: Path) -> None:
    """Raise when the file of `row` has a column this version does not know."""
    extra = sorted(set(row) - set(columns))
    if extra:
        raise EnergyHarnessError(
            f"{path} has columns this version does not know ({', '.join(extra[:3])}); "
            "merge with the energy-harness version that wrote it"
        )


def _merge_records(run_dirs: list[Path], work: Path, run_id: str, suite_text: str | None) -> None:
    """environment.json (the first shard's, with every shard's), suite.toml, run.json."""
    environments: dict[str, Any] = {}
    for run_dir in run_dirs:
        env_file = run_dir / "environment.json"
        if env_file.is_file():
            try:
                environments[str(run_dir)] = json.loads(env_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise EnergyHarnessError(f"{env_file} is damaged ({exc})") from None
    first = next(iter(environments.values()), {})
    write_json(
        work / "environment.json",
        {**first, "merged_utc": utc_now_iso(), "shards": environments},
    )
    if suite_text is not None:
        write_atomic(work / "suite.toml", suite_text)
    write_json(
        work / "run.json",
        {"run_id": run_id, "merged_from": [str(d) for d in run_dirs], "options": {}},
    )


def _warn_missing(
    run_dirs: list[Path], suite_text: str | None, case_ids: set[str], warn: Warn
) -> None:
    """Warn when the merged run lacks cases of its suite (a shard missing or unfinished);
    where the suite cannot be read here (a user model not importable), from the shard
    numbers the runs recorded, and say that the cases could not be listed."""
    _warn_missing_shards(run_dirs, warn)
    if suite_text is None:
        return
    try:
        expected = [c.case_id for c in parse_suite(suite_text, f"{run_dirs[0]}/suite.toml").cases]
    except EnergyHarnessError as exc:
        warn(
            f"cannot list the suite's cases to check that none is missing ({exc}); the merged "
            f"run holds {len(case_ids)} cases: make the suite's models importable here "
            "(PYTHONPATH) and merge again to check"
        )
        return
    missing = [c for c in expected if c not in case_ids]
    if missing:
        warn(
            f"the merged run holds {len(expected) - len(missing)} of the suite's "
            f"{len(expected)} cases; missing: {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            + " (a shard not given, or one that did not finish: resume it, then merge again)"
        )


def _warn_missing_shards(run_dirs: list[Path], warn: Warn) -> None:
    """Warn when the runs were shards I/N of a suite and some I is not among them."""
    shards: set[tuple[int, int]] = set()
    for run_dir in run_dirs:
        try:
            shard = json.loads((run_dir / "run.json").read_text())["options"]["shard"]
            shards.add((int(shard[0]), int(shard[1])))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return  # not a shard, or a record that does not say: nothing to check
    counts = {n for _, n in shards}
    if len(counts) != 1:
        return
    (count,) = counts
    absent = sorted(set(range(count)) - {i for i, _ in shards})
    if absent:
        warn(
            f"shard(s) {', '.join(f'{i}/{count}' for i in absent)} of this suite are not "
            "among the runs merged: merge them too"
        )
