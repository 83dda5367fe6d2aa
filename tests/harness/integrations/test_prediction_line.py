"""The line that holds a prediction against what the training really took."""

from __future__ import annotations

import math

from harness.integrations.prediction import Prediction, actual_line

PREDICTED = Prediction(1, 5, 125.0, math.nan, math.nan, 10.0, math.nan, math.nan, 0.0, 0, 0)


def test_the_prediction_is_held_against_the_actual_in_percent():
    assert actual_line(PREDICTED, 100.0) == (
        "predicted 125 J after epoch 1 of 5, actual 100 J (+25.0 %)"
    )


def test_an_actual_that_could_not_be_read_is_said_never_nan():
    line = actual_line(PREDICTED, math.nan)
    assert line == (
        "predicted 125 J after epoch 1 of 5, actual unknown (an epoch's energy could not be read)"
    )
