"""Break-even against hand-computed figures, its interval, and where it is "never"."""

from __future__ import annotations

import math

import pytest

from harness.rows.break_even import (
    NEVER,
    break_even,
    break_even_columns,
    case_break_even,
    run_break_evens,
)
from harness.rows.case_energy import CaseEnergy
from harness.rows.vs_dense import PAIRED, VsDense, vs_dense_all


def _vs(ratio: float, low: float, high: float, p: float = 0.001, **kw) -> VsDense:
    return VsDense(
        "v",
        "d",
        ratio,
        low,
        high,
        0.0,
        "counter",
        method=PAIRED,
        pairs=5,
        p_value=p,
        p_holm=p,
        **kw,
    )


def test_break_even_is_extra_preparation_over_the_saving_per_inference():
    # dense 2 mJ per inference, the variant 25 % less: 0.5 mJ saved per inference;
    # 30 J of fine-tuning is repaid after 30 / 0.0005 = 60,000 inferences
    be = break_even(_vs(0.75, 0.70, 0.80), dense_j_per_sample=2e-3, extra_prepare_j=30.0)
    assert be.saving_j_per_inference == pytest.approx(5e-4)
    assert be.inferences == pytest.approx(60_000)
    # the ratio's bounds give the count's: 30 / (0.002 x 0.30) and 30 / (0.002 x 0.20)
    assert be.ci95_low == pytest.approx(50_000)
    assert be.ci95_high == pytest.approx(75_000)
    assert not be.never and be.note == ""


def test_an_interval_close_to_one_gives_a_long_upper_bound():
    # beyond noise, but the ratio may be as high as 0.99: as little as 1 % saved
    be = break_even(_vs(0.9, 0.85, 0.99), 1e-3, 1.0)
    assert be.inferences == pytest.approx(1.0 / (1e-3 * 0.1))
    assert be.ci95_low == pytest.approx(1.0 / (1e-3 * 0.15))
    assert be.ci95_high == pytest.approx(1.0 / (1e-3 * 0.01))
    cells = break_even_columns(be)
    assert cells["break_even_inferences_ci95_high"] == pytest.approx(100_000)


@pytest.mark.parametrize(
    ("vs", "why"),
    [
        (_vs(0.97, 0.92, 1.02, p=0.2), "saves nothing beyond noise"),  # interval holds 1
        (_vs(0.95, 0.93, 0.97, p=0.01, noise_floor_pct=8.0), "beyond noise"),  # A/A floor
        (_vs(1.10, 1.05, 1.15), "at least as much energy"),  # costs more per inference
    ],
)
def test_a_variant_that_saves_nothing_beyond_noise_never_breaks_even(vs, why):
    be = break_even(vs, 1e-3, 5.0)
    assert be.never and why in be.note
    cells = break_even_columns(be)
    assert cells["break_even_inferences"] == NEVER
    assert cells["break_even_note"] == be.note


def test_an_unknown_preparation_gives_no_figure_and_says_why():
    be = break_even(_vs(0.8, 0.75, 0.85), 1e-3, math.nan)
    assert math.isnan(be.inferences) and "preparation energy unknown" in be.note
    assert break_even_columns(be)["break_even_inferences"] is None


def test_only_inference_variants_have_a_break_even():
    vs = _vs(0.8, 0.75, 0.85)
    assert case_break_even("training", vs, 1e-3, 5.0) is None
    assert case_break_even("inference", None, 1e-3, 5.0) is None
    control = _vs(1.0, 0.98, 1.02, is_control=True)
    assert case_break_even("inference", control, 1e-3, 5.0) is None
    assert case_break_even("inference", vs, 1e-3, 5.0) is not None
    assert break_even_columns(None) == dict.fromkeys(break_even_columns(None))


def test_a_run_s_rows_give_the_same_break_even_as_the_formula():
    group = ("m", "d", "inference", "32", "cpu", "fp32")
    rounds = tuple(str(i) for i in range(5))
    dense = CaseEnergy("m/dense", group, "dense", (1.0e-3,) * 5, 0.9, "counter", rounds=rounds)
    factors = (0.79, 0.80, 0.81, 0.80, 0.80)
    variant = CaseEnergy(
        "m/v", group, "magnitude", tuple(1e-3 * f for f in factors), 0.9, "counter", rounds=rounds
    )
    vs = vs_dense_all([dense, variant])
    rows = [
        {"case_id": "m/dense", "mode": "inference", "prepare_energy_j": "40.0"},
        {"case_id": "m/v", "mode": "inference", "prepare_energy_j": "2.0"},
    ]
    found = run_break_evens(rows, [dense, variant], vs)
    assert set(found) == {"m/v"}  # dense itself has none
    # 2 J (the variant's own step; dense's training is in both accounts) / 0.2 mJ
    assert found["m/v"].inferences == pytest.approx(2.0 / (1e-3 * (1 - vs["m/v"].energy_ratio)))
    assert found["m/v"].inferences == pytest.approx(10_000, rel=0.01)
