"""Each variant against dense, the noise-aware front and the headline: one definition."""

from __future__ import annotations

import dataclasses
import math

import pytest

from harness.rows.case_energy import CaseEnergy, case_energies
from harness.rows.headline import dominates, estimate_error_summary, headline, noise_aware_front
from harness.rows.repetitions import CaseRepetitions
from harness.rows.stats import ratio_ci95_log_delta, welch_p_value
from harness.rows.vs_dense import compare_with_dense, vs_dense_all, vs_dense_columns
from harness.spec.case import group_key

GROUP = ("lenet5", "digits", "inference", "64", "cpu", "fp32")
OTHER = ("lenet5", "digits", "training", "64", "cpu", "fp32")
STEADY = (0.98, 1.0, 1.02)  # x the mean: a few % of spread


def case(variant: str, mean: float, accuracy: float, group=GROUP, spread=STEADY, why=""):
    return CaseEnergy(
        case_id=f"{variant}/{group[2]}",
        group=group,
        variant=variant,
        values_j_per_sample=tuple(mean * f for f in spread),
        accuracy=accuracy,
        source="model",
        unstable_reason=why,
    )


def test_the_ratio_and_its_interval_are_the_one_statistic_of_two_means():
    dense, pruned = case("dense", 2e-3, 0.97), case("structured", 1e-3, 0.98)
    v = compare_with_dense(pruned, dense)
    assert v.energy_ratio == pytest.approx(0.5)
    low, high = ratio_ci95_log_delta(
        list(dense.values_j_per_sample), list(pruned.values_j_per_sample)
    )
    assert (v.ratio_ci95_low, v.ratio_ci95_high) == (low, high)
    assert low < 0.5 < high < 1
    assert v.accuracy_pp == pytest.approx(1.0)  # (0.98 - 0.97) x 100 percentage points
    assert v.beyond_noise and "beyond noise" in v.noise_words
    columns = vs_dense_columns(v)
    assert math.isnan(columns.pop("energy_vs_dense_noise_floor_pct"))  # no control
    assert columns == {
        "energy_vs_dense_ratio": v.energy_ratio,
        "energy_vs_dense_ratio_ci95_low": low,
        "energy_vs_dense_ratio_ci95_high": high,
        "energy_vs_dense_beyond_noise": True,
        "accuracy_vs_dense_pp": v.accuracy_pp,
        "energy_vs_dense_method": "unpaired",  # no rounds: mean / mean
        "energy_vs_dense_pairs": None,
        "energy_vs_dense_not_judged": "",
        "energy_vs_dense_p": welch_p_value(
            list(dense.values_j_per_sample), list(pruned.values_j_per_sample)
        ),
        "energy_vs_dense_p_holm": v.p_value,  # one comparison: nothing to adjust
    }


def test_an_interval_that_includes_no_change_is_within_noise():
    v = compare_with_dense(case("magnitude", 1.01e-3, 0.97), case("dense", 1e-3, 0.97))
    assert v.ratio_ci95_low < 1 < v.ratio_ci95_high
    assert not v.beyond_noise and v.noise_words.startswith("within noise")


def test_an_unstable_side_is_never_beyond_noise_and_says_which():
    dense = case("dense", 2e-3, 0.97, why="other processes used up to 48 % of the CPUs")
    v = compare_with_dense(case("structured", 1e-3, 0.98), dense)
    assert v.excludes_no_change and not v.beyond_noise
    assert v.not_judged == "dense is unstable"
    assert vs_dense_columns(v)["energy_vs_dense_beyond_noise"] is False


def test_one_repetition_gives_a_ratio_without_interval_and_says_so():
    v = compare_with_dense(case("structured", 1e-3, 0.98, spread=(1.0,)), case("dense", 2e-3, 0.97))
    assert v.energy_ratio == pytest.approx(0.5) and math.isnan(v.ratio_ci95_low)
    assert not v.beyond_noise and "fewer than 2 repetitions" in v.noise_words
    assert vs_dense_columns(v)["energy_vs_dense_beyond_noise"] is None  # an empty cell


def test_no_dense_case_in_the_group_means_empty_columns():
    cases = [case("dense", 2e-3, 0.97, group=OTHER), case("structured", 1e-3, 0.98)]
    assert vs_dense_all(cases) == {}  # the dense case is of another mode
    assert set(vs_dense_columns(None).values()) == {None}


def test_the_group_is_model_dataset_mode_batch_device_and_precision():
    row = {"model": "m", "dataset": "d", "mode": "inference", "batch_size": 64, "device": "cpu"}
    assert group_key({**row, "precision": "bf16"}) == ("m", "d", "inference", "64", "cpu", "bf16")
    assert group_key(row) != group_key({**row, "precision": "bf16"})


def test_case_energies_keep_finished_cases_with_usable_repetitions():
    rows = [
        {"case_id": "a", "status": "ok", "variant": "dense", "accuracy": "0.9"},
        {"case_id": "b", "status": "skipped", "variant": "int8-dynamic"},
        {"case_id": "c", "status": "ok", "variant": "structured", "stable": "false"},
    ]
    reps = {
        "a": CaseRepetitions("a", ["0"], [1e-3], sources={"counter"}),
        "c": CaseRepetitions("c", [], [], unusable=["0"]),
    }
    (a,) = case_energies(rows, reps)
    assert (a.case_id, a.source, a.accuracy, a.values_j_per_sample) == (
        "a",
        "counter",
        0.9,
        (1e-3,),
    )


def test_a_point_is_dominated_only_beyond_both_intervals_and_not_less_accurate():
    dense = case("dense", 2.0e-3, 0.97)  # interval about 1.90 .. 2.10 mJ (n = 3)
    close = case("magnitude", 1.97e-3, 0.96)  # less accurate, energy within noise
    cheap = case("structured", 1.0e-3, 0.97)
    worse = case("threshold", 2.5e-3, 0.96)
    assert not dominates(dense, close) and not dominates(close, dense)
    assert dominates(cheap, dense) and dominates(cheap, close) and dominates(cheap, worse)
    assert not dominates(cheap, case("int8", 1.2e-3, 0.98))  # more accurate: stays
    front = noise_aware_front([dense, close, cheap, worse, case("int8", 1.2e-3, 0.98)])
    assert [c.variant for c in front] == ["structured", "int8"]
    # with nothing cheaper beyond noise, a less accurate point within noise stays on it
    assert [c.variant for c in noise_aware_front([dense, close])] == ["magnitude", "dense"]


def test_the_headline_names_the_best_saving_beyond_noise_per_group():
    cases = [
        case("dense", 2.0e-3, 0.97),
        case("structured", 1.0e-3, 0.965),
        case("int8", 1.5e-3, 0.975),
        case("dense", 6.0e-3, 0.97, group=OTHER),
        case("magnitude", 6.05e-3, 0.98, group=OTHER),
    ]
    rows = [{"status": "ok", "estimate_error_pct": e} for e in ("-50", "-60", "-40", "x")]
    h = headline(cases, rows)
    inference, training = h.groups
    assert inference.best_variant == "structured" and inference.best.beyond_noise
    assert inference.best.energy_ratio == pytest.approx(0.5)
    assert inference.best.accuracy_pp == pytest.approx(-0.5)
    assert training.best_variant == "magnitude" and not training.best.beyond_noise  # lowest
    assert h.source == "model"
    assert (h.estimate_error.n, h.estimate_error.median_pct) == (3, -50)
    assert (h.estimate_error.min_pct, h.estimate_error.max_pct) == (-60, -40)


def test_a_group_without_dense_says_so():
    h = headline([case("structured", 1e-3, 0.9)], [])
    (g,) = h.groups
    assert g.best is None and g.note == "no finished dense case in this group to compare with"
    assert estimate_error_summary([]).n == 0


def in_rounds(variant: str, per_round_j: list[float], disturbed: int = 0, group=GROUP, **kw):
    """A case measured in rounds 0, 1, ... (the first `disturbed` rounds left out)."""
    rounds = tuple(str(r) for r in range(len(per_round_j)))[disturbed:]
    return CaseEnergy(
        case_id=f"{variant}/{group[2]}",
        group=group,
        variant=variant,
        values_j_per_sample=tuple(per_round_j[disturbed:]),
        accuracy=kw.pop("accuracy", 0.97),
        source="model",
        rounds=rounds,
        windows=len(per_round_j),
        disturbed=disturbed,
        **kw,
    )


def test_the_paired_ratio_is_the_geometric_mean_of_per_round_ratios_by_hand():
    # the machine drifts by 30 % over the rounds; each round's ratio is about 0.5
    dense = in_rounds("dense", [1.0, 1.1, 1.3, 1.2, 1.0])
    pruned = in_rounds("structured", [0.5, 0.56, 0.64, 0.6, 0.51])
    v = compare_with_dense(pruned, dense)
    ratios = [0.5, 0.56 / 1.1, 0.64 / 1.3, 0.5, 0.51]
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 4)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t(0.975, 4 df)
    assert v.method == "paired" and v.pairs == 5
    assert v.energy_ratio == pytest.approx(math.exp(mean))
    assert v.ratio_ci95_low == pytest.approx(math.exp(mean - half))
    assert v.ratio_ci95_high == pytest.approx(math.exp(mean + half))
    # the drift that the rounds share is gone from the paired interval, not the unpaired
    unpaired = ratio_ci95_log_delta(
        list(dense.values_j_per_sample), list(pruned.values_j_per_sample)
    )
    assert v.ratio_ci95_high - v.ratio_ci95_low < (unpaired[1] - unpaired[0]) / 3
    assert v.beyond_noise


def test_only_rounds_where_both_were_usable_are_paired():
    dense = in_rounds("dense", [1.0, 9.0, 1.0, 1.0, 1.0], disturbed=2)  # rounds 0, 1 left out
    v = compare_with_dense(in_rounds("magnitude", [0.8, 0.8, 0.8, 0.81, 0.79]), dense)
    assert v.pairs == 3 and v.energy_ratio == pytest.approx(0.8, rel=0.01)
    assert v.not_judged == ""


def test_too_few_undisturbed_rounds_are_not_judged_and_say_why_and_what_to_do():
    dense = in_rounds("dense", [1.0, 1.0, 1.0, 1.01, 0.99], disturbed=3)
    v = compare_with_dense(in_rounds("magnitude", [0.5, 0.5, 0.5, 0.5, 0.51]), dense)
    assert v.excludes_no_change and not v.beyond_noise
    assert v.noise_words == (
        "not judged: only 2 rounds measured both undisturbed (at least 3 needed): dense was "
        "disturbed in 3 of 5 windows; run again on a quieter machine or with more `repetitions`"
    )


def test_a_case_whose_every_window_was_disturbed_is_not_judged():
    dense = in_rounds("dense", [1.0, 1.0, 1.01, 0.99])
    spoilt = dataclasses.replace(in_rounds("magnitude", [0.5, 0.5, 0.51, 0.5]), disturbed=4)
    v = compare_with_dense(spoilt, dense)
    assert v.not_judged.startswith("the variant was disturbed in 4 of 4 windows")


def test_the_a_a_control_is_the_noise_floor_of_its_group():
    dense = in_rounds("dense", [1.0, 1.02, 0.98, 1.01, 0.99])
    control = in_rounds("dense (control)", [1.03, 1.05, 1.0, 1.05, 1.02])  # about +3 %
    small = in_rounds("magnitude", [0.975, 0.995, 0.955, 0.985, 0.965])  # -2.5 %, tight
    large = in_rounds("structured", [0.6, 0.61, 0.59, 0.6, 0.6])
    vs = vs_dense_all([dense, control, small, large])
    floor = vs[control.case_id]
    assert floor.excludes_no_change  # an A/A difference this run could not explain
    assert math.isnan(floor.noise_floor_pct)  # the control is not judged by itself
    assert vs[small.case_id].noise_floor_pct == pytest.approx(floor.floor_pct)
    assert vs[small.case_id].excludes_no_change and not vs[small.case_id].beyond_noise
    assert vs[small.case_id].noise_words.startswith("within noise: the A/A control differs")
    assert vs[large.case_id].beyond_noise
    assert "A/A control" in vs[large.case_id].noise_words


def test_the_paired_p_is_the_one_sample_t_test_of_the_log_ratios_by_hand():
    dense_j, pruned_j = [1.0, 1.1, 1.3, 1.2, 1.0], [0.98, 1.06, 1.29, 1.15, 0.99]
    v = compare_with_dense(in_rounds("magnitude", pruned_j), in_rounds("dense", dense_j))
    logs = [math.log(b / a) for a, b in zip(dense_j, pruned_j, strict=True)]
    mean = sum(logs) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 4)
    t = abs(mean) / (sd / math.sqrt(5))
    # Student t with 4 df: P(|T| > t) = 1 - I_x(1/2, 2), x = t^2 / (t^2 + 4), in closed form
    x = t * t / (t * t + 4)
    p = 1 - math.sqrt(x) * (3 - x) / 2
    assert v.p_value == pytest.approx(p, rel=1e-9)
    assert v.p_holm == v.p_value and v.family == 1  # one comparison on its own
    # the interval and the test agree: the interval excludes 1 exactly when p < 0.05
    assert v.excludes_no_change == (v.p_value < 0.05)


def test_holm_over_the_group_keeps_a_chance_difference_within_noise():
    dense = in_rounds("dense", [1.0, 1.02, 0.98, 1.01, 0.99])
    control = in_rounds("dense (control)", [1.0, 1.03, 0.97, 1.0, 1.0])
    # about -2.5 % in each round, with a little spread: alone p = 0.034; six tested, not
    small = in_rounds("magnitude", [0.965, 1.015, 0.965, 0.975, 0.98])
    nulls = [
        in_rounds(name, [1.0, 1.02, 0.99, 1.0, 0.995])
        for name in ("threshold", "magnitude[0.9]", "int8")
    ]
    large = in_rounds("structured", [0.6, 0.61, 0.59, 0.6, 0.6])
    alone = compare_with_dense(small, dense)
    assert alone.excludes_no_change and alone.beyond_noise and alone.p_value < 0.05
    vs = vs_dense_all([dense, control, small, *nulls, large])
    together = vs[small.case_id]
    assert together.family == 6 and together.p_holm > 0.05
    assert together.p_holm == pytest.approx(min(1.0, 5 * together.p_value))  # second smallest
    assert together.excludes_no_change and not together.beyond_noise
    assert together.mark == "~Holm"
    assert together.noise_words.startswith("within noise: its 95 % interval excludes 0 %")
    assert "Holm" in together.noise_words
    assert vs[large.case_id].beyond_noise  # p ~ 1e-6 survives any adjustment
    columns = vs_dense_columns(together)
    assert columns["energy_vs_dense_p_holm"] == together.p_holm
    assert columns["energy_vs_dense_beyond_noise"] is False
