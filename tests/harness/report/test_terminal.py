"""The run summary at 80 columns, and the one way figures and labels are written."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from rich.console import Console

from harness.report.format import fmt_change, fmt_interval, short_case_labels, short_variant
from harness.report.terminal import print_run_summary
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender
from harness.rows.stats import ratio_ci95_log_delta

VARIANTS = {  # label -> (J per sample, accuracy)
    "dense": (730e-6, 0.9694),
    "threshold[threshold=0.1]": (779e-6, 0.9694),
    "magnitude[sparsity=0.5]": (745e-6, 0.9806),
    "magnitude[sparsity=0.9]": (697e-6, 0.9750),
    "structured[ratio=0.5]": (335e-6, 0.9778),
}
SPREAD = (0.98, 1.0, 1.02, 0.99, 1.01)
SKIPPED = (
    "variant 'int8-dynamic' skipped: dynamic int8 layers have no backward pass: int8 runs "
    "inference only"
)


def write_run(run_dir: Path) -> Path:
    """The default suite's training cases, as cases.csv and measurements.csv hold them."""
    run_dir.mkdir()
    measurements = CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS)
    cases = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    base = {"run_id": "r", "model": "lenet5", "mode": "training", "batch_size": 64}
    base |= {"device": "cpu"}
    for variant, (mean, accuracy) in VARIANTS.items():
        case_id = f"lenet5/{variant}/training/bs64/cpu"
        for rep, factor in enumerate(SPREAD):
            measurements.append(
                {**base, "case_id": case_id, "variant": variant, "repetition": rep}
                | {"probe": "model", "domain": "cpu:model", "source": "model", "in_total": True}
                | {"samples": 64, "energy_j": mean * factor * 64, "valid": True}
            )
        cases.append(
            {**base, "case_id": case_id, "variant": variant, "dataset": "digits"}
            | {"precision": "fp32", "status": "ok", "accuracy": accuracy, "n": 5}
            | {"measured_source": "model", "energy_j_per_sample_mean": mean * 1.0}
            | {
                "energy_j_per_sample_ci95_low": mean * 0.98,
                "energy_j_per_sample_ci95_high": mean * 1.02,
            }
            | {"estimate_error_pct": -61.9, "stable": True}
        )
    cases.append(
        {**base, "case_id": "lenet5/int8-dynamic/training/bs64/cpu", "variant": "int8-dynamic"}
        | {"dataset": "digits", "precision": "fp32", "status": "skipped", "error": SKIPPED}
    )
    measurements.close()
    cases.close()
    return run_dir


def summary(run_dir: Path, width: int) -> str:
    console = Console(record=True, width=width)
    print_run_summary(run_dir, console)
    return console.export_text()


def test_the_summary_reads_at_80_columns(tmp_path):
    text = summary(write_run(tmp_path / "run"), 80)
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    words = set(text.split())
    for token in ("threshold=0.1", "sparsity=0.5", "sparsity=0.9", "ratio=0.5", "int8-dynamic"):
        assert token in words  # names whole, never cut in a token
    assert "730 µJ [715, 745]" in text  # one prefix, its interval in brackets
    # structured vs dense: the ratio of the means and its interval, as a change in %
    low, high = ratio_ci95_log_delta([730e-6 * f for f in SPREAD], [335e-6 * f for f in SPREAD])
    change = f"-54 % [{(low - 1) * 100:+.0f}, {(high - 1) * 100:+.0f}]"
    (row,) = [line for line in lines if line.startswith("structured")]
    assert change in row and "97.78 (+0.84)" in row
    assert f"skipped: lenet5/int8-dynamic/training/bs64/cpu: {SKIPPED}" in " ".join(text.split())
    assert "best vs dense: structured ratio=0.5: energy per sample -54 %" in " ".join(text.split())
    assert "(MODELLED)" in text and "no hardware energy counter" in " ".join(text.split())


def test_a_wide_terminal_keeps_one_line_per_variant(tmp_path):
    text = summary(write_run(tmp_path / "run"), 200)
    assert any(line.startswith("magnitude sparsity=0.9 ") for line in text.splitlines())


def test_a_run_that_simulates_gives_each_case_its_three_figures(tmp_path):
    from report_runs import make_run

    text = " ".join(summary(make_run(tmp_path / "run", simulated=True), 80).split())
    # c1 (dense inference): measured 2.00 mJ, ESTIMATED 1.5 mJ, SIMULATED a quarter of the
    # measurement (-75 %), (0.5 - 1.5) / 1.5 = -66.7 % from the estimate
    assert "three ways to know each case's energy per sample" in text
    assert (
        "c1: measured 2 mJ, ESTIMATED 1.5 mJ, SIMULATED 500 µJ on edge-systolic-64 "
        "(sparse-ideal 10 µJ; vs measured -75.0 %; vs estimate -66.7 %)"
    ) in text
    assert "c5:" not in text.split("three ways")[1].split("headline")[0]  # training: none
    plain = " ".join(summary(make_run(tmp_path / "plain"), 80).split())
    assert "three ways" not in plain


def test_figures_are_written_one_way():
    assert fmt_interval(4.7e-4, 4.0e-4, 5.4e-4, "J") == "470 µJ [400, 540]"
    assert fmt_interval(4.7e-4, 4.0e-4, 5.4e-4, "J", like=2e-3) == "0.470 mJ [0.400, 0.540]"
    assert fmt_interval(4.7e-4, math.nan, math.nan, "J") == "470 µJ"
    assert fmt_interval(math.nan, 1, 2, "J") == "–"
    assert fmt_change(0.58, 0.55, 0.61) == "-42 % [-45, -39]"
    assert fmt_change(1.021, 0.971, 1.074) == "+2.1 % [-2.9, +7.4]"  # no hyphen is a minus
    assert fmt_change(0.998, 0.83, 1.2) == "+0 % [-17, +20]"  # never -0
    assert short_variant("magnitude[sparsity=0.9]") == "magnitude sparsity=0.9"
    assert short_variant("dense") == "dense"


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (
            ["lenet5/dense/inference/bs64/cpu", "lenet5/structured[ratio=0.5]/training/bs64/cpu"],
            ["dense inference", "structured ratio=0.5 training"],
        ),
        (
            ["lenet5/dense/inference/bs64/cpu", "mlp/dense/inference/bs256/cpu"],
            ["lenet5 dense inference bs64", "mlp dense inference bs256"],
        ),
        (["not-a-case-id"], ["not-a-case-id"]),
    ],
)
def test_short_case_labels_keep_what_differs(ids, expected):
    assert list(short_case_labels(ids).values()) == expected


def test_no_hyphen_separates_two_numbers():
    assert not re.search(r"\d-\d", fmt_change(0.97, 0.95, 1.02) + fmt_interval(1, 0.9, 1.1, "J"))
