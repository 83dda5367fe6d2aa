"""The run directory of a tracked training, in a suite run's format.

A phase kind (`epoch` for `epoch-1`, `epoch-2`, ...) is a case; each phase of that kind is
one repetition; the whole tracked span is the case `whole`. So measurements.csv has one
row per phase x rank x domain, cases.csv one row per kind, and `report`, `compare` and
`merge` read it as they read a suite's run. Rows are appended as each phase ends.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.measure.clock import utc_now_iso
from harness.measure.environment import environment_record
from harness.measure.probes import probe_statuses
from harness.measure.timeline import TIMELINE_COLUMNS, PowerPoint, PowerTimeline, timeline_row
from harness.rows.carbon import CarbonSettings
from harness.rows.cases import case_figures, params_text, stability_columns
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS, STATUS_OK
from harness.rows.csvfile import CsvAppender, write_json
from harness.rows.measurements import measurement_rows, repetition_total
from harness.rows.rundir import create_run_dir
from harness.rows.stability import StabilityLimits
from harness.spec.case import Case
from probes.base import Probe, ProbeOptions

WHOLE = "whole"  # the case of the whole tracked span
LIMITS = StabilityLimits(max_cv_pct=10.0, max_other_cpu_pct=25.0)  # as a suite's defaults
RankRecords = list[Mapping[str, Any]]


_NUMBERED = re.compile(r"[-_ #]?\d+$")


def phase_kind(name: str) -> str:
    """`epoch-3` -> `epoch`; `eval_2` -> `eval`; `warm up` -> `warm up`."""
    return _NUMBERED.sub("", name.strip()) or name


class TrackedRunDir:
    """Files of one tracked run (written by rank 0 only): run.json, environment.json,
    measurements.csv as phases end, power_timeline.csv, and cases.csv at the end."""

    def __init__(
        self,
        out: Path | None,
        results_root: Path,
        columns: Mapping[str, Any],
        carbon: CarbonSettings,
        options: Mapping[str, Any],
    ) -> None:
        self.path = create_run_dir(out, results_root)
        self.run_id = self.path.name
        self.columns = dict(columns)  # model, dataset, mode, batch_size, device, precision
        self.carbon = carbon
        self.started_utc = utc_now_iso()
        self.run_json: dict[str, Any] = {
            "run_id": self.run_id,
            "kind": "tracked",
            "options": dict(options),
            "started_utc": self.started_utc,
        }
        write_json(self.path / "run.json", self.run_json)
        self.measurements = CsvAppender(self.path / "measurements.csv", MEASUREMENT_COLUMNS)
        self.repetitions: dict[str, list[RankRecords]] = {}
        self.timeline: PowerTimeline | None = None
        self._timeline_csv: CsvAppender | None = None
        # rows are written by a thread of their own, so that a phase's end costs the
        # training a counter read, not a CSV write and its fsync
        self._rows: queue.SimpleQueue[tuple[Case, int, RankRecords] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_rows, name="tracked-rows", daemon=True)
        self._writer.start()
        self.write_error: BaseException | None = None

    def _write_rows(self) -> None:
        while (phase := self._rows.get()) is not None:
            if self.write_error is None:
                case, repetition, ranks = phase
                try:
                    rows = measurement_rows(self.run_id, case, repetition, list(ranks))
                    self.measurements.append_many(rows)
                except BaseException as exc:  # kept, raised by finish()
                    self.write_error = exc

    def case(self, kind: str) -> Case:
        c = self.columns
        return Case(
            c["model"],
            c["dataset"],
            kind,
            (),
            c["mode"],
            c["batch_size"],
            c["device"],
            precision=c["precision"],
        )

    def write_environment(self, probes: list[Probe], options: ProbeOptions) -> None:
        extra = {"carbon": self.carbon.to_dict(), "tracked": self.run_json["options"]}
        write_json(
            self.path / "environment.json",
            environment_record(probe_statuses(options), probes, extra),
        )

    def start_timeline(self, probes: list[Probe], rate_hz: float) -> None:
        """power_timeline.csv at `rate_hz` (0: none)."""
        if rate_hz <= 0:
            return
        self._timeline_csv = csv_file = CsvAppender(
            self.path / "power_timeline.csv", TIMELINE_COLUMNS
        )

        def sink(points: list[PowerPoint]) -> None:
            csv_file.append_many(timeline_row(p) for p in points)

        origin = datetime.fromisoformat(self.started_utc)
        self.timeline = PowerTimeline(probes, rate_hz, sink=sink, origin_utc=origin)
        self.timeline.start()

    def add_phase(self, kind: str, ranks: RankRecords) -> int:
        """Append a phase's rows (all ranks); its repetition number within its kind."""
        reps = self.repetitions.setdefault(kind, [])
        self._rows.put((self.case(kind), len(reps), ranks))
        reps.append(ranks)
        return len(reps) - 1

    def case_row(self, kind: str, world_size: int) -> dict[str, Any]:
        """cases.csv row of one phase kind: its repetitions' figures and CO2."""
        totals = [repetition_total(list(r)) for r in self.repetitions[kind]]
        samples = max(1, int(self.columns["batch_size"]) or 1)
        fig = case_figures(totals, samples, world_size)
        case = self.case(kind)
        return {
            **case.columns(self.run_id),
            "dataset": case.dataset,
            "variant_params": params_text(()),
            "status": STATUS_OK,
            "error": "",
            "latency_s_per_batch": fig.latency_s,
            "measured_source": fig.source,
            "n": fig.energy.n,
            "energy_j_per_sample_mean": fig.energy.mean,
            "energy_j_per_sample_std": fig.energy.std,
            "energy_j_per_sample_ci95_low": fig.energy.ci95_low,
            "energy_j_per_sample_ci95_high": fig.energy.ci95_high,
            "dynamic_energy_j_per_sample_mean": fig.dynamic.mean,
            "iterations": fig.iterations,
            "duration_s": fig.duration_s,
            "energy_j": fig.energy_j,
            "energy_source": fig.source,
            "co2_g_per_1000_samples": self.carbon.co2_g(fig.energy.mean * 1000),
            "carbon_intensity_g_per_kwh": self.carbon.intensity_g_per_kwh,
            "pue": self.carbon.pue,
            "started_utc": self.started_utc,
            "finished_utc": utc_now_iso(),
            "world_size": world_size if world_size > 1 else None,
            **stability_columns(fig, LIMITS),
        }

    def finish(self, world_size: int, extra: Mapping[str, Any]) -> None:
        """cases.csv (one row per kind, `whole` first), run.json with `extra`; files closed."""
        try:
            self._rows.put(None)
            self._writer.join()
            if self.write_error is not None:
                raise self.write_error
            if self.timeline is not None:
                self.timeline.stop()
            cases = CsvAppender(self.path / "cases.csv", CASE_COLUMNS)
            try:
                kinds = sorted(self.repetitions, key=lambda k: (k != WHOLE, k))
                cases.append_many(self.case_row(kind, world_size) for kind in kinds)
            finally:
                cases.close()
            self.run_json.update({"finished_utc": utc_now_iso(), **extra})
            write_json(self.path / "run.json", self.run_json)
        finally:
            for appender in (self.measurements, self._timeline_csv):
                if appender is not None:
                    with contextlib.suppress(Exception):
                        appender.close()
