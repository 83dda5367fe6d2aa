"""Suite files: validation errors name the file, the key and the allowed values."""

from __future__ import annotations

import re

import pytest

from harness.errors import EnergyHarnessError
from harness.spec.suite import load_suite, parse_suite

GOOD = """
[suite]
repetitions = 2
modes = ["inference", "training"]
batch_sizes = [8, 16]

[[models]]
name = "lenet5"
variants = ["dense", { name = "magnitude", sparsity = 0.9 }]
"""


def test_cases_are_the_product_of_models_variants_modes_and_batch_sizes():
    suite = parse_suite(GOOD, "good.toml")
    # 2 variants x 2 modes x 2 batch sizes, and an A/A control beside each dense case
    assert len(suite.cases) == 2 * 2 * 2 + 4
    ids = [c.case_id for c in suite.cases]
    assert "lenet5/magnitude[sparsity=0.9]/training/bs16/cpu" in ids
    dense = ids.index("lenet5/dense/inference/bs8/cpu")
    assert ids[dense + 1] == "lenet5/dense (control)/inference/bs8/cpu"
    control = suite.cases[dense + 1]
    assert (
        control.control and control.variant == "dense" and control.group == suite.cases[dense].group
    )
    assert suite.settings.repetitions == 2 and suite.settings.idle_baseline_s == 3.0


def test_the_control_is_left_out_when_asked_or_when_there_is_nothing_to_compare():
    off = parse_suite(GOOD.replace("[suite]", "[suite]\ncontrol = false"), "off.toml")
    assert not any(c.control for c in off.cases) and len(off.cases) == 8
    alone = parse_suite(GOOD.replace(', { name = "magnitude", sparsity = 0.9 }', ""), "d.toml")
    assert [c.variant_label for c in alone.cases] == ["dense"] * 4  # no variant: no control


@pytest.mark.parametrize(
    "line, message",
    [
        ("processes = 3", "suite.processes: at most `repetitions` (2)"),
        ("processes = -1", "suite.processes: must be >= 0"),
        ("control = 1", "suite.control: expected true or false"),
    ],
)
def test_round_settings_are_checked(line, message):
    with pytest.raises(EnergyHarnessError, match=re.escape(message)):
        parse_suite(GOOD.replace("[suite]", f"[suite]\n{line}"), "bad.toml")


def test_bundled_suites_parse():
    default = load_suite(None)
    variants = {c.variant_label for c in default.cases}
    assert {
        "dense",
        "int8-dynamic",
        "magnitude[sparsity=0.5]",
        "magnitude[sparsity=0.9]",
    } <= variants
    assert {c.mode for c in default.cases} == {"inference", "training"}
    gpu = load_suite("gpu")
    assert {c.model for c in gpu.cases} == {"resnet18", "mobilenet_v2", "transformer"}


VARIANT = "[[models]]\nname = 'lenet5'\nvariants = [{{ name = 'magnitude', {} }}]"


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[[models]]\nname = "lenet6"', "models[0].name: unknown model 'lenet6'"),
        ("[suite]\nrepetitions = -1\n[[models]]\nname = 'lenet5'", "suite.repetitions: must be"),
        ("[suite]\nrepetition = 3\n[[models]]\nname = 'lenet5'", "suite.repetition: unknown key"),
        ("[suite]\nmodes = ['serving']\n[[models]]\nname = 'lenet5'", "'serving' is not allowed"),
        ("[[models]]\nname = 'lenet5'\nvariants = ['prune']", "unknown variant 'prune'"),
        ("[carbon]\npue = 'high'\n[[models]]\nname = 'lenet5'", "carbon.pue: expected a float"),
        ("[suite]\nname = 'x'", "models: the suite needs at least one"),
        ("[suite\n", "not valid TOML"),
        (
            "[suite]\nprecision = 'fp8'\n[[models]]\nname = 'lenet5'",
            "suite.precision: unknown precision 'fp8'; allowed: fp32, tf32, bf16, fp16",
        ),
        # no float is NaN or infinite (TOML has both literals)
        (
            "[suite]\nmin_window_s = nan\n[[models]]\nname = 'lenet5'",
            "suite.min_window_s: expected a finite",
        ),
        (
            "[suite]\nidle_baseline_s = inf\n[[models]]\nname = 'lenet5'",
            "suite.idle_baseline_s: expected a finite",
        ),
        (
            "[suite]\ntimeline_hz = inf\n[[models]]\nname = 'lenet5'",
            "suite.timeline_hz: expected a finite",
        ),
        (
            "[suite]\ntimeline_hz = 1e9\n[[models]]\nname = 'lenet5'",
            "suite.timeline_hz: must be at most 1000",
        ),
        ("[carbon]\npue = nan\n[[models]]\nname = 'lenet5'", "carbon.pue: expected a finite"),
        # variant parameters are checked when the suite is read, not when the case runs
        (
            VARIANT.format("sparsity = 5"),
            "models[0].variants[0]: variant 'magnitude': sparsity must be in [0, 1)",
        ),
        (VARIANT.format('sparsity = "high"'), "parameter sparsity must be a float, got 'high'"),
        (VARIANT.format("sparsity = nan"), "sparsity must be in [0, 1)"),
        (VARIANT.format("level = 3"), "unknown parameter(s) level; known: sparsity"),
    ],
)
def test_bad_suites_name_file_key_and_fix(text, expected):
    with pytest.raises(EnergyHarnessError) as info:
        parse_suite(text, "bad.toml")
    message = str(info.value)
    assert message.startswith("bad.toml: ")
    assert expected in message


def test_unknown_key_lists_the_allowed_ones():
    with pytest.raises(EnergyHarnessError, match="allowed keys: .*repetitions"):
        parse_suite("[suite]\nrepetition = 3\n[[models]]\nname = 'lenet5'", "s.toml")


def test_missing_suite_file_is_a_clear_error(tmp_path):
    with pytest.raises(EnergyHarnessError, match="cannot read suite file"):
        load_suite(str(tmp_path / "none.toml"))
    with pytest.raises(EnergyHarnessError, match="bundled suites: default, gpu"):
        load_suite("nightly")


def test_the_suite_precision_reaches_every_case_and_its_columns():
    suite = parse_suite("[suite]\nprecision = 'bf16'\n[[models]]\nname = 'lenet5'", "s.toml")
    assert suite.settings.precision == "bf16"
    (case,) = suite.cases
    assert case.precision == "bf16" and case.columns("run")["precision"] == "bf16"
    assert "bf16" not in case.case_id  # runs at two precisions compare case by case
    assert parse_suite(GOOD, "good.toml").cases[0].precision == "fp32"  # the default
