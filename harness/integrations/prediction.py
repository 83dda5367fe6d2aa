"""The whole training's energy, CO2 and time, predicted from the epochs done so far.

carbontracker's idea (Anthony et al., 2020, arXiv:2007.03051): after the first epoch(s),
the total is the epochs planned times the mean epoch. Here the epochs done are counted as
measured, the rest predicted, with a 95 % prediction interval once two epochs are done
(`harness.rows.stats.remaining_sum_ci95`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from harness.report.format import fmt_interval, fmt_si
from harness.rows.carbon import CarbonSettings
from harness.rows.stats import remaining_sum_ci95


@dataclass(frozen=True)
class Prediction:
    """The predicted whole training after `epochs_done` of `epochs_planned` epochs."""

    epochs_done: int
    epochs_planned: int
    energy_j: float
    energy_low_j: float  # 95 % prediction interval (NaN after a single epoch)
    energy_high_j: float
    duration_s: float
    duration_low_s: float
    duration_high_s: float
    co2_g: float
    co2_low_g: float
    co2_high_g: float

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }

    def line(self) -> str:
        """`predicted for 5 epochs (after 1): 12.3 J, CO2 1.62 mg, 6.10 s; interval after 2`."""
        energy = fmt_interval(self.energy_j, self.energy_low_j, self.energy_high_j, "J")
        co2 = fmt_interval(self.co2_g, self.co2_low_g, self.co2_high_g, "g")
        time = fmt_interval(self.duration_s, self.duration_low_s, self.duration_high_s, "s")
        text = (
            f"predicted for {self.epochs_planned} epochs (after {self.epochs_done}): "
            f"{energy}, CO2 {co2}, {time}"
        )
        if math.isnan(self.energy_low_j):
            text += " (95 % interval from the second epoch on)"
        return text


def predict(
    epoch_energy_j: list[float],
    epoch_duration_s: list[float],
    epochs_planned: int,
    carbon: CarbonSettings,
) -> Prediction:
    """The whole training from the epochs done: measured so far + the rest predicted."""
    done = len(epoch_energy_j)
    remaining = max(0, epochs_planned - done)
    so_far_j, so_far_s = sum(epoch_energy_j), sum(epoch_duration_s)
    e, e_low, e_high = (so_far_j + v for v in remaining_sum_ci95(epoch_energy_j, remaining))
    t, t_low, t_high = (so_far_s + v for v in remaining_sum_ci95(epoch_duration_s, remaining))
    return Prediction(
        done,
        epochs_planned,
        e,
        e_low,
        e_high,
        t,
        t_low,
        t_high,
        carbon.co2_g(e),
        carbon.co2_g(e_low),
        carbon.co2_g(e_high),
    )


def actual_line(prediction: Prediction, actual_j: float) -> str:
    """`predicted 12.3 J after epoch 1, actual 12.1 J (+1.6 %)`."""
    predicted = (
        f"predicted {fmt_si(prediction.energy_j, 'J')} after epoch {prediction.epochs_done} of "
        f"{prediction.epochs_planned}"
    )
    if not (math.isfinite(actual_j) and actual_j > 0):
        return f"{predicted}, actual unknown (an epoch's energy could not be read)"
    error = (prediction.energy_j - actual_j) / actual_j * 100
    return f"{predicted}, actual {fmt_si(actual_j, 'J')} ({error:+.1f} %)"
