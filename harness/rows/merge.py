"""Merge shard run directories (`--shard I/N`) into one run directory."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import EnergyHarnessError
from harness.measure.clock import utc_now_iso
from harness.measure.timeline import TIMELINE_COLUMNS
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows, write_json
from harness.rows.rundir import create_run_dir


def merge_runs(run_dirs: list[Path], out: Path) -> Path:
    """Combine shards: every case once (a case in two shards is an error), all their rows."""
    if not run_dirs:
        raise EnergyHarnessError("merge needs at least one run directory")
    for run_dir in run_dirs:
        if not (Path(run_dir) / "cases.csv").is_file():
            raise EnergyHarnessError(f"{run_dir} has no cases.csv: not a finished run directory")
    out = create_run_dir(out)
    seen: dict[str, Path] = {}
    cases = CsvAppender(out / "cases.csv", CASE_COLUMNS)
    measurements = CsvAppender(out / "measurements.csv", MEASUREMENT_COLUMNS)
    timeline = None
    environments = {}
    try:
        for run_dir in map(Path, run_dirs):
            rows = read_rows(run_dir / "cases.csv")
            for row in rows:
                if row["case_id"] in seen:
                    raise EnergyHarnessError(
                        f"case {row['case_id']} is in both {seen[row['case_id']]} and "
                        f"{run_dir}: merge shards of one suite, each once"
                    )
                seen[row["case_id"]] = run_dir
            cases.append_many(rows)
            finished = {row["case_id"] for row in rows}
            measurements.append_many(
                r for r in read_rows(run_dir / "measurements.csv") if r["case_id"] in finished
            )
            points = read_rows(run_dir / "power_timeline.csv")
            if points:
                timeline = timeline or CsvAppender(out / "power_timeline.csv", TIMELINE_COLUMNS)
                timeline.append_many(points)
            env_file = run_dir / "environment.json"
            if env_file.is_file():
                environments[str(run_dir)] = json.loads(env_file.read_text())
    finally:
        cases.close()
        measurements.close()
        if timeline is not None:
            timeline.close()
    first = next(iter(environments.values()), {})
    write_json(
        out / "environment.json",
        {**first, "merged_utc": utc_now_iso(), "shards": environments},
    )
    suite = Path(run_dirs[0]) / "suite.toml"
    if suite.is_file():
        (out / "suite.toml").write_text(suite.read_text())
    write_json(
        out / "run.json",
        {"run_id": out.name, "merged_from": [str(d) for d in run_dirs], "options": {}},
    )
    return out
