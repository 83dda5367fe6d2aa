"""What the Hugging Face and Lightning callbacks share, free of either framework.

`TrainingEnergy` turns a trainer's events (training begins, an epoch begins and ends,
a step ends, an evaluation begins and ends, training ends) into tracker phases and into
the metrics a trainer logs: `energy/epoch_j`, `energy/power_w`, `energy/co2_g`,
`energy/j_per_sample`, `energy/j_per_token` (when tokens are counted), `energy/steps_j`
(every N steps), `energy/eval_j`, and `energy/predicted_j` with its interval.
"""

from __future__ import annotations

import math
from typing import Any

from harness.integrations.tracker import TrackedPhase, Tracker

Metrics = dict[str, float]


def _finite(metrics: dict[str, float]) -> Metrics:
    """Loggers reject NaN (TensorBoard, W&B): leave those out."""
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


class TrainingEnergy:
    """One training's energy, fed by a trainer's events. `tracker_options` go to
    `Tracker` (out, country, pue, probes, powercap_root, ...); `every_n_steps` adds a
    window per N optimizer steps (0: none)."""

    def __init__(self, every_n_steps: int = 0, **tracker_options: Any) -> None:
        self.every_n_steps = max(0, int(every_n_steps))
        self.options = tracker_options
        self.tracker: Tracker | None = None
        self._epoch = self._steps = self._eval = None
        self._epoch_index = 0
        self._samples = self._tokens = self._step_count = self._steps_samples = 0

    def train_begin(self, name: str, epochs: int | None, **columns: Any) -> None:
        options = {"epochs": epochs, **columns, **self.options}
        self.tracker = Tracker(name, **options).start()
        if self.every_n_steps:
            self._steps = self.tracker.begin_phase("steps")

    def epoch_begin(self) -> None:
        if self.tracker is None or self._epoch is not None:
            return
        self._epoch_index += 1
        self._samples = self._tokens = 0
        self._epoch = self.tracker.begin_phase(f"epoch-{self._epoch_index}")

    def step_end(self, samples: int, tokens: int = 0) -> Metrics:
        """After an optimizer step; metrics of the last N steps when a window ends."""
        self._samples += samples
        self._tokens += tokens
        self._steps_samples += samples
        self._step_count += 1
        if self.tracker is None or self._steps is None:
            return {}
        if self._step_count % self.every_n_steps:
            return {}
        phase = self.tracker.end_phase(self._steps, self._steps_samples)
        self._steps_samples = 0
        self._steps = self.tracker.begin_phase("steps")
        return _finite({"energy/steps_j": phase.energy_j, "energy/steps_power_w": phase.power_w})

    def epoch_end(self) -> Metrics:
        if self.tracker is None or self._epoch is None:
            return {}
        token, self._epoch = self._epoch, None
        phase = self.tracker.end_phase(token, self._samples)
        metrics = self._phase_metrics("epoch", phase)
        if self._tokens:
            metrics["energy/j_per_token"] = phase.energy_j / self._tokens
        prediction = self.tracker.latest_prediction
        if prediction is not None and prediction.epochs_done == self._epoch_index:
            metrics["energy/predicted_j"] = prediction.energy_j
            metrics["energy/predicted_low_j"] = prediction.energy_low_j
            metrics["energy/predicted_high_j"] = prediction.energy_high_j
            metrics["energy/predicted_co2_g"] = prediction.co2_g
        return _finite(metrics)

    def eval_begin(self) -> None:
        if self.tracker is not None and self._eval is None:
            self._eval = self.tracker.begin_phase("eval")

    def eval_end(self) -> Metrics:
        if self.tracker is None or self._eval is None:
            return {}
        token, self._eval = self._eval, None
        phase = self.tracker.end_phase(token)
        return _finite({"energy/eval_j": phase.energy_j, "energy/eval_co2_g": phase.co2_g})

    def train_end(self) -> Metrics:
        """Close what is open and the tracker; the whole training's metrics."""
        if self.tracker is None:
            return {}
        if self._eval is not None:
            self.eval_end()
        if self._epoch is not None:
            self.epoch_end()
        if self._steps is not None:
            self.tracker.end_phase(self._steps, self._steps_samples)
            self._steps = None
        self.tracker.stop()
        whole = self.tracker.whole
        if whole is None:
            return {}
        return _finite(
            {
                "energy/train_j": whole.energy_j,
                "energy/train_co2_g": whole.co2_g,
                "energy/train_power_w": whole.power_w,
            }
        )

    def _phase_metrics(self, kind: str, phase: TrackedPhase) -> Metrics:
        per_sample = phase.energy_j / self._samples if self._samples else math.nan
        return {
            f"energy/{kind}_j": phase.energy_j,
            "energy/power_w": phase.power_w,
            "energy/co2_g": phase.co2_g,
            "energy/j_per_sample": per_sample,
        }

    @property
    def writes(self) -> bool:
        """Whether this process logs and writes (rank 0)."""
        return self.tracker is None or self.tracker.rank.writes
