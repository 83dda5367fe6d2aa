"""Resuming a run: its saved suite and options, its damage, what is left to do.

A resumed run continues exactly as it was started (suite.toml and run.json of the run
directory). A row cut off mid-write is set aside first; of the cases that have no
cases.csv row yet, the rounds measured whole are kept and a round measured in part is
dropped and measured again. A damaged file is one line that
names it and how to recover.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.rows.columns import MEASUREMENT_COLUMNS
from harness.rows.csvfile import iter_rows, read_rows, rewrite_csv, set_aside_torn_row
from harness.rows.rundir import RUN_CSVS
from harness.run.options import RunOptions, shard_cases
from harness.run.rounds import incomplete_rounds, round_key
from harness.spec.case import Case
from harness.spec.suite import Suite, add_import_path, parse_suite

Say = Callable[[str], None]


def drop_unfinished_rows(run_dir: Path, finished: set[str]) -> int:
    """Rewrite measurements.csv without the rows of unfinished cases that no complete
    round holds (`harness.run.rounds.incomplete_rounds`): a round measured in part is
    measured again, whole rounds are kept. Returns how many rows were dropped. Streams
    the file (twice, and a third time to rewrite it when a row goes)."""
    path = run_dir / "measurements.csv"
    incomplete = incomplete_rounds(iter_rows(path))  # whole with its finished cases too

    def dropped(row: dict[str, str]) -> bool:
        return row["case_id"] not in finished and round_key(row) in incomplete

    count = sum(dropped(r) for r in iter_rows(path))
    if count:
        rewrite_csv(path, MEASUREMENT_COLUMNS, (r for r in iter_rows(path) if not dropped(r)))
    return count


def load_resume(run_dir: Path) -> tuple[Suite, RunOptions, dict[str, Any]]:
    """The suite, options and record of a run to resume; damage is one line naming the
    file and how to recover."""
    meta_path = run_dir / "run.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("options"), dict):
            raise ValueError("no `options` table")
        options = RunOptions.from_dict(meta["options"])
    except (OSError, ValueError, TypeError) as exc:
        raise EnergyHarnessError(
            f"{meta_path} is damaged ({type(exc).__name__}: {exc}); it records the run's "
            "options: restore it, or start a new run of the same suite with "
            f"`energy-harness run {run_dir}/suite.toml --out NEW_DIR`"
        ) from None
    try:
        text = (run_dir / "suite.toml").read_text(encoding="utf-8")
    except OSError as exc:
        raise EnergyHarnessError(
            f"cannot read {run_dir}/suite.toml ({exc.strerror}); copy the suite file this "
            f"run was started with to {run_dir}/suite.toml, then resume again"
        ) from None
    source = Path(str(meta.get("suite") or ""))
    if source.suffix == ".toml" and source.parent.is_dir():  # its models are found there
        add_import_path(source.resolve().parent)
    return parse_suite(text, f"{run_dir}/suite.toml"), options, meta


def check_resumable(run_dir: Path) -> None:
    if not (run_dir / "run.json").is_file():
        raise EnergyHarnessError(
            f"{run_dir} is not a run directory (no run.json); give the directory that "
            "`energy-harness run` printed"
        )


def pending_cases(run_dir: Path, suite: Suite, options: RunOptions, say: Say) -> list[Case]:
    """The cases of a resumed run without a row in cases.csv (none: the run is finished,
    and nothing is changed). A partial last row of any CSV is set aside, and rows of a
    half-measured case are dropped; each is said in one line."""
    for name in RUN_CSVS:
        message = set_aside_torn_row(run_dir / name)
        if message:
            say(f"warning: {message}")
    finished = {r["case_id"] for r in read_rows(run_dir / "cases.csv")}
    todo = [c for c in shard_cases(suite.cases, options.shard) if c.case_id not in finished]
    if not todo:
        say(
            f"{run_dir} is finished: all {len(finished)} cases have a row in cases.csv; "
            "nothing to do"
        )
        return todo
    dropped = drop_unfinished_rows(run_dir, finished)
    say(
        f"resuming {run_dir}: {len(finished)} cases done, {len(todo)} to go"
        + (f" ({dropped} rows of rounds measured in part dropped)" if dropped else "")
    )
    return todo
