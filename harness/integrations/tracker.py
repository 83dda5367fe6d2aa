"""`harness.track(...)`: the energy of any code, with its phases, in a run directory.

    with harness.track("my-training", epochs=5, country="FRA") as tracker:
        for epoch in range(5):
            with harness.phase(f"epoch-{epoch}", samples=len(train_set)):
                train_one_epoch()

It measures the whole span and each phase (`harness.phase`, or `begin_phase`/`end_phase`
for callbacks), writes a run directory in a suite run's format (`TrackedRunDir`), predicts
the whole training after the first epoch(s) when the epochs planned are known, and says
one line at the end: energy, its source, average power, CO2 with the intensity used.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.integrations.prediction import Prediction, actual_line, predict
from harness.integrations.ranks import RankInfo, gather, rank_probes
from harness.integrations.rundir import WHOLE, TrackedRunDir, phase_kind
from harness.measure.meter import EnergyMeter, Measurement
from harness.measure.phases import add_listener, remove_listener
from harness.measure.probes import select_probes
from harness.measure.sources import source_label
from harness.report.format import co2_line, fmt_si
from harness.rows.carbon import CarbonSettings, carbon_settings
from harness.rows.measurements import repetition_total, window_record
from harness.rows.stats import remaining_sum_ci95
from probes.base import ProbeOptions

EPOCH = "epoch"  # the phase kind that predictions count


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TrackedPhase:
    """One ended phase: over the whole job (all ranks) where the ranks could be gathered."""

    name: str
    kind: str
    repetition: int
    samples: int
    duration_s: float
    energy_j: float  # NaN when a counted domain was invalid
    source: str  # counter, model or counter+model
    co2_g: float
    measurement: Measurement | None  # this rank's own window (None: it reads no counter)

    @property
    def power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else math.nan

    @property
    def energy_j_per_sample(self) -> float:
        return self.energy_j / self.samples if self.samples > 0 else math.nan


@dataclass
class _Token:
    name: str
    window: str
    samples: int


class Tracker:
    """Measures a span of code and its phases; see the module docstring. Arguments:

    `name`: the run's model column; `out`: the run directory (default results/<run-id>);
    `epochs`: the epochs planned (for the prediction), `predict_after_epochs` (default 1);
    `country`/`region`/`carbon_intensity`/`pue`: CO2 as `energy-harness run` takes them;
    `probes`, `powercap_root`: as `--probe`, `--powercap-root`; `timeline_hz`: the power
    timeline's rate (0: none); `say`: where lines go (default stderr; None: silent);
    `write`: False keeps everything in memory (no run directory).
    """

    def __init__(
        self,
        name: str = "training",
        *,
        out: Path | str | None = None,
        results_root: Path | str = "results",
        dataset: str = "",
        mode: str = "training",
        batch_size: int = 0,
        device: str = "cpu",
        precision: str = "fp32",
        epochs: int | None = None,
        predict_after_epochs: int = 1,
        country: str | None = None,
        region: str | None = None,
        carbon_intensity: float | None = None,
        pue: float | None = None,
        probes: list[str] | None = None,
        powercap_root: Path | str | None = None,
        timeline_hz: float = 1.0,
        say: Callable[[str], None] | None = _stderr_line,
        write: bool = True,
    ) -> None:
        self.name = name
        self.carbon: CarbonSettings = carbon_settings(
            country, region, carbon_intensity, 1.0 if pue is None else pue
        )
        self.epochs, self.predict_after_epochs = epochs, max(1, predict_after_epochs)
        self._columns = {
            "model": name,
            "dataset": dataset,
            "mode": mode,
            "batch_size": batch_size,
            "device": device,
            "precision": precision,
        }
        self._out = None if out is None else Path(out)
        self._results_root = Path(results_root)
        self._probe_names = probes
        self._probe_options = ProbeOptions(
            powercap_root=None if powercap_root is None else Path(powercap_root)
        )
        self._timeline_hz, self._say, self._write = timeline_hz, say, write
        self.rank = RankInfo.from_env()
        self.meter: EnergyMeter | None = None
        self.run_dir: Path | None = None
        self._files: TrackedRunDir | None = None
        self.phases: list[TrackedPhase] = []
        self.whole: TrackedPhase | None = None
        self.prediction: Prediction | None = None  # the first, after `predict_after_epochs`
        self.latest_prediction: Prediction | None = None
        self._count = 0
        self._started = False

    # -- the span -------------------------------------------------------------------------

    def start(self) -> Tracker:
        """Open the run directory (rank 0) and the whole window; phases are heard from now."""
        if self._started:
            return self
        selected = select_probes(self._probe_names, self._probe_options)
        for warning in selected.warnings:
            self._line(f"warning: {warning}")
        probes = rank_probes(selected.probes, self.rank)
        self.meter = EnergyMeter(probes) if probes else None
        if self._write and self.rank.writes:
            options = {**self._columns, "epochs": self.epochs, **self._carbon_options()}
            self._files = TrackedRunDir(
                self._out, self._results_root, self._columns, self.carbon, options
            )
            self.run_dir = self._files.path
            self._files.write_environment(selected.probes, self._probe_options)
            if self.meter is not None:
                self._files.start_timeline(self.meter.probes, self._timeline_hz)
        if self.epochs:  # the prediction's interval (scipy) is loaded now, not between epochs
            remaining_sum_ci95([1.0, 2.0], 1)
        if self.meter is not None:
            self.meter.start()
            for warning in self.meter.started_warnings:
                self._line(f"warning: {warning}")
            self.meter.begin_window(WHOLE)
        add_listener(self)
        self._started = True
        return self

    def stop(self) -> None:
        """End the whole window; write cases.csv and run.json; say the closing line."""
        if not self._started:
            return
        self._started = False
        remove_listener(self)
        try:
            self.whole = self._ended(WHOLE, WHOLE, 1, WHOLE)
        finally:
            if self.meter is not None:
                self.meter.close()
            if self._files is not None:
                self._files.finish(self.rank.world_size, {"prediction": self._prediction_record()})
        self._line(self.summary_line())
        if self.prediction is not None:
            self._line(actual_line(self.prediction, self._epochs_energy_j()))

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __call__(self, func: Callable) -> Callable:
        """As a decorator: every call of `func` is tracked (a run directory each)."""

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper

    # -- phases ---------------------------------------------------------------------------

    def begin_phase(self, name: str, samples: int | None = None) -> _Token:
        """Open a phase window; pass the token to `end_phase` (what `harness.phase` does)."""
        self._count += 1
        token = _Token(name, f"{name} #{self._count}", int(samples or 0))
        if self.meter is not None:
            self.meter.begin_window(token.window)
        return token

    def end_phase(self, token: _Token, samples: int | None = None) -> TrackedPhase:
        """Close a phase: its rows are written, its figures returned (and kept in `phases`).
        `samples`: the samples it processed, when only known at its end."""
        count = token.samples if samples is None else samples
        phase = self._ended(token.window, token.name, count, phase_kind(token.name))
        self.phases.append(phase)
        if phase.kind == EPOCH:
            self._predict()
        return phase

    def _ended(self, window: str, name: str, samples: int, kind: str) -> TrackedPhase:
        m = self.meter.end_window(window) if self.meter is not None else None
        where = {"node": self.rank.node, "rank": self.rank.rank}
        if m is not None:
            own = window_record(m, 1, max(1, samples), **where)
        else:  # a rank that reads no counter (its node's are local rank 0's)
            own = {**where, "iterations": 1, "samples": max(1, samples), "start_utc": ""}
            own |= {"duration_s": 0.0, "domains": [], "warnings": [], "other_cpu_pct": None}
        records = gather(own, self.rank)
        total = repetition_total(records)
        repetition = self._files.add_phase(kind, records) if self._files is not None else 0
        return TrackedPhase(
            name,
            kind,
            repetition,
            total.samples,
            total.duration_s,
            total.energy_j,
            total.source,
            self.carbon.co2_g(total.energy_j),
            m,
        )

    # -- prediction and lines ---------------------------------------------------------------

    def _epochs(self) -> list[TrackedPhase]:
        return [p for p in self.phases if p.kind == EPOCH]

    def _epochs_energy_j(self) -> float:
        return sum(p.energy_j for p in self._epochs())

    def _predict(self) -> None:
        epochs = self._epochs()
        if not self.epochs or len(epochs) < self.predict_after_epochs:
            return
        if len(epochs) >= self.epochs:
            return  # nothing left to predict
        self.latest_prediction = predict(
            [p.energy_j for p in epochs], [p.duration_s for p in epochs], self.epochs, self.carbon
        )
        if self.prediction is None:
            self.prediction = self.latest_prediction
            self._line(self.prediction.line())

    def _prediction_record(self) -> dict[str, Any] | None:
        if self.prediction is None:
            return None
        epochs = self._epochs()
        return {
            "predicted": self.prediction.to_dict(),
            "latest": None if self.latest_prediction is None else self.latest_prediction.to_dict(),
            "actual": {
                "epochs": len(epochs),
                "energy_j": self._epochs_energy_j(),
                "duration_s": sum(p.duration_s for p in epochs),
                "co2_g": self.carbon.co2_g(self._epochs_energy_j()),
            },
        }

    def summary_line(self) -> str:
        """`training: 12.3 J (measured) over 6.10 s, average 2.02 W; CO2 ... ; results/...`."""
        w = self.whole
        if w is None:
            return f"{self.name}: not measured yet"
        text = (
            f"{self.name}: {fmt_si(w.energy_j, 'J')} ({source_label(w.source)}) over "
            f"{w.duration_s:.2f} s, average {fmt_si(w.power_w, 'W')}; "
            f"{co2_line(w.energy_j, self.carbon)}"
        )
        return text + (f"; {self.run_dir}" if self.run_dir is not None else "")

    def _carbon_options(self) -> dict[str, Any]:
        c = self.carbon
        return {"country": c.country, "region": c.region, "pue": c.pue}

    def _line(self, text: str) -> None:
        if self._say is not None and self.rank.writes:
            self._say(text)


def track(name: str = "training", **options: Any) -> Tracker:
    """A `Tracker` (see its arguments): `with track(...)` or `@track(...)`."""
    return Tracker(name, **options)
