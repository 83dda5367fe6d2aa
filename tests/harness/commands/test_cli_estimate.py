"""`energy-harness estimate` and `calibrate` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.estimate.profiles import load_profile

runner = CliRunner()


def test_estimate_json_is_one_object_with_the_promised_fields():
    result = runner.invoke(app, ["estimate", "lenet5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # exactly one JSON object, nothing else
    assert report["kind"] == "estimate" and "not a measurement" in report["label"]
    assert report["model"] == "lenet5" and report["variant"] == "dense"
    assert report["flops_per_sample"] == 833_040
    assert report["bytes_per_sample"] > 0
    assert set(report["breakdown_j"]) == {"compute", "storage", "communication", "static"}
    assert report["energy_j_per_sample"] == pytest.approx(sum(report["breakdown_j"].values()))
    assert set(report["accountings"]) == {"dense-hw", "sparse-ideal", "nonzero-params"}
    assert report["accountings"]["nonzero-params"]["nonzero_params"] == 61_706


def test_estimate_options_change_the_estimate():
    def run(*args: str) -> dict:
        result = runner.invoke(app, ["estimate", "lenet5", "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    base = run("--profile", "h100-class")
    batched = run("--profile", "h100-class", "--batch-size", "16")
    assert batched["bytes_per_sample"] < base["bytes_per_sample"]  # weights amortised
    assert batched["flops_per_sample"] == base["flops_per_sample"]
    training = run("--profile", "h100-class", "--mode", "training", "--world-size", "2")
    assert training["flops_per_sample"] > 2.5 * base["flops_per_sample"]
    assert training["comm_bytes_per_sample_by_channel"]["interconnect"] > 0
    timed = run("--profile", "h100-class", "--duration-s", "0.001")
    assert timed["breakdown_j"]["static"] == pytest.approx(70.0 * 0.001)
    assert timed["duration_source"] == "measured"


def test_estimate_human_output_is_labelled_as_an_estimate():
    result = runner.invoke(app, ["estimate", "mlp", "--profile", "x86-server-cpu"])
    assert result.exit_code == 0, result.output
    assert "not a measurement" in " ".join(result.stdout.split())
    assert "mlp [dense]" in result.stdout
    assert "sparse-ideal" in result.stdout


def test_unknown_profile_and_mode_are_user_errors():
    result = runner.invoke(app, ["estimate", "lenet5", "--profile", "tpu-v9"])
    assert result.exit_code == 2
    assert "horowitz-45nm" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["estimate", "lenet5", "--mode", "serving"])
    assert result.exit_code == 2 and "--mode" in result.stderr


def test_calibrate_from_a_run_reports_leave_one_out_per_case(tmp_path):
    rng = np.random.default_rng(0)
    n = 12
    cases = pd.DataFrame(
        {
            "case": [f"case-{i}" for i in range(n)],
            "duration_s": rng.uniform(1, 5, n),
            "flops": rng.uniform(1e12, 1e13, n),
            "bytes": rng.uniform(1e11, 1e12, n),
            "comm_bytes": np.zeros(n),
            "energy_source": "counter",
        }
    )
    exact = 50 * cases["duration_s"] + 30e-12 * cases["flops"] + 200e-12 * cases["bytes"]
    cases["energy_j"] = exact * (1 + rng.normal(0, 0.005, n))
    cases["estimated_energy_j"] = exact * 1.3
    cases["flops_per_sample"] = 1.0  # other columns are ignored
    failed = cases.iloc[[0]].assign(case="failed-case", energy_j=float("nan"))
    cases = pd.concat([cases, failed], ignore_index=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cases.to_csv(run_dir / "cases.csv", index=False)
    out = tmp_path / "fitted.toml"
    result = runner.invoke(app, ["calibrate", "--from", str(run_dir), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [c["case"] for c in report["cases"]] == [f"case-{i}" for i in range(n)]
    assert report["dropped_cases"] == ["failed-case"]
    assert report["median_abs_loo_error_pct"] < 2
    assert report["coefficients"]["flops"]["value"] == pytest.approx(30, rel=0.1)
    assert report["cases"][0]["prior_estimate_error_pct"] == pytest.approx(30, abs=2)
    assert report["undetermined"] == ["comm_bytes"]
    profile = load_profile(out)
    assert profile.memory["dram"].pj_per_byte == pytest.approx(200, rel=0.1)
    human = runner.invoke(app, ["calibrate", "--from", str(run_dir)])
    assert human.exit_code == 0 and "case-11" in human.stdout and "LOO" in human.stdout


def test_calibrate_from_a_run_whose_energies_are_all_zero_names_the_energies(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pd.DataFrame(  # a run on a counter that never moved: counts of 7e9, energies 0
        {
            "case_id": ["a", "b", "c"],
            "duration_s": [1.0, 2.0, 3.0],
            "flops": [7e9, 8e9, 9e9],
            "bytes": [1e9, 2e9, 3e9],
            "comm_bytes": [0, 0, 0],
            "energy_j": [0.0, 0.0, 0.0],
        }
    ).to_csv(run_dir / "cases.csv", index=False)
    result = runner.invoke(app, ["calibrate", "--from", str(run_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {run_dir}/cases.csv: no case has an energy_j above zero (3 of 3 are zero, "
        "the others empty): there is no measured energy to fit; run the suite where a probe "
        "measures energy (`energy-harness probes`), then calibrate from that run"
    )


def test_calibrate_from_a_directory_without_cases_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["calibrate", "--from", str(tmp_path)])
    assert result.exit_code == 2 and "cases.csv" in result.stderr


def test_calibrate_with_microbenchmarks_writes_a_profile(fake_powercap, tmp_path):
    tree = fake_powercap()
    out = tmp_path / "machine.toml"
    args = ["calibrate", "--probe", "rapl", "--powercap-root", str(tree.root), "--device"]
    # 0.1 s windows: a 30 ms one read 0 J once, the fake tree's writer starved on a busy machine
    args += ["cpu", "--small", "--seconds", "0.1", "--idle-s", "0.1", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["energy_source"] == ["counter"]
    assert report["profile_path"] == str(out)
    profile = load_profile(out)
    assert profile.target == "cpu" and not profile.host_to_device_inputs
    assert profile.static.power_w > 0  # the fake machine draws 25 W whatever it does
    assert "probes rapl" in profile.static.source
    dropped = profile.fit["dropped_windows"]  # said, never fitted as 0 J
    assert len(profile.fit["rows"]) + len(dropped) == 6  # idle + 2 benchmarks, 2 rounds
    assert len(dropped) <= 1 and report["dropped_windows"] == dropped


def _estimate(*args: str) -> dict:
    result = runner.invoke(app, ["estimate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_estimate_of_compressed_variants():
    dense = _estimate("lenet5")
    magnitude = _estimate("lenet5", "--variant", "magnitude", "--param", "sparsity=0.9")
    assert magnitude["variant"] == "magnitude" and magnitude["notes"]
    assert magnitude["flops_per_sample"] == dense["flops_per_sample"]  # dense-hw: unchanged
    assert 0.1 < magnitude["density"] < 0.11  # 90 % of weights, biases kept
    ideal = magnitude["accountings"]["sparse-ideal"]
    assert ideal["flops_per_sample"] < 0.6 * dense["flops_per_sample"]
    assert ideal["energy_j_per_sample"] < magnitude["energy_j_per_sample"]
    structured = _estimate("lenet5", "--variant", "structured", "--param", "ratio=0.5")
    assert structured["flops_per_sample"] < 0.5 * dense["flops_per_sample"]
    assert structured["energy_j_per_sample"] < dense["energy_j_per_sample"]
    int8 = _estimate("mlp", "--variant", "int8-dynamic")
    assert set(int8["flops_by_dtype_per_sample"]) == {"int8"}


def test_bad_variant_parameters_are_user_errors():
    result = runner.invoke(app, ["estimate", "lenet5", "--variant", "magnitude", "--param", "x=1"])
    assert result.exit_code == 2 and "unknown parameter" in result.stderr
    result = runner.invoke(app, ["estimate", "lenet5", "--variant", "pruned-ish"])
    assert result.exit_code == 2 and "known variants" in result.stderr


@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")  # on purpose
def test_a_profile_fitted_to_modelled_energy_says_so(tmp_path):
    out = tmp_path / "modelled.toml"
    args = ["calibrate", "--probe", "model", "--device", "cpu", "--small", "--seconds", "0.03"]
    result = runner.invoke(app, [*args, "--idle-s", "0.03", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["energy_source"] == ["model"]
    assert "MODELLED" in report["energy_label"]
    profile = load_profile(out)
    assert "MODELLED" in profile.static.source and "MODELLED" in profile.derivation


def test_an_estimate_says_its_shapes_precision_seed_and_flop_convention():
    lenet = _estimate("lenet5")
    assert lenet["input_shape"] == [1, 32, 32] and lenet["output_shape"] == [10]
    assert lenet["num_classes"] == 10 and lenet["precision"] == "fp32" and lenet["seed"] == 0
    assert "1 multiply-add = 2 FLOPs" in lenet["flop_convention"]
    assert "MACs" in lenet["flop_convention"]
    # three input channels: conv1 does 3x its 28x28x6x25 multiply-adds, 2 FLOPs each
    colour = _estimate("lenet5", "--input-shape", "3,32,32")
    assert colour["input_shape"] == [3, 32, 32]
    assert colour["flops_per_sample"] == 833_040 + 2 * 2 * 28 * 28 * 6 * 25
    mlp = _estimate("mlp")
    assert mlp["input_shape"] == [1, 28, 28] and mlp["params"] == 266_610
    text = runner.invoke(app, ["estimate", "lenet5", "--seed", "3"]).stdout
    flat = " ".join(text.split())
    assert "input shape (1, 32, 32) per sample" in flat and "seed 3" in flat
    assert "1 multiply-add = 2 FLOPs" in flat and "precision fp32" in flat


def test_a_pruned_estimate_is_the_same_call_after_call():
    args = ("lenet5", "--variant", "magnitude", "--param", "sparsity=0.9")
    runs = [_estimate(*args) for _ in range(3)]
    ideal = [r["accountings"]["sparse-ideal"]["flops_per_sample"] for r in runs]
    assert ideal[0] == ideal[1] == ideal[2]
    assert runs[0] == runs[1]
    other = _estimate(*args, "--seed", "1")["accountings"]["sparse-ideal"]["flops_per_sample"]
    assert other != ideal[0]


def test_precision_option_prices_the_flops_of_its_path():
    bf16 = _estimate("lenet5", "--profile", "h200-class", "--precision", "bf16")
    assert set(bf16["flops_by_dtype_per_sample"]) == {"bf16"}
    assert bf16["breakdown_j"]["compute"] == pytest.approx(833_040 * 0.73e-12)
    result = runner.invoke(app, ["estimate", "lenet5", "--precision", "fp8"])
    assert result.exit_code == 2 and "allowed: fp32, tf32, bf16, fp16" in result.stderr


@pytest.mark.parametrize("shape", ["3,x,32", "0,32,32", ""])
def test_a_bad_input_shape_is_one_line(shape):
    result = runner.invoke(app, ["estimate", "lenet5", "--input-shape", shape])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and "--input-shape" in result.stderr


@pytest.mark.parametrize(
    ("factory", "what"),
    [
        ("user_models:raises", "raised ValueError: hidden size must be even, got 3"),
        ("user_models:not_a_module", "returned dict, not a torch.nn.Module"),
    ],
)
def test_a_failing_user_factory_is_one_line_naming_it(monkeypatch, factory, what):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "run"))
    result = runner.invoke(app, ["estimate", factory])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1
    assert factory in result.stderr and what in result.stderr


def test_the_cli_starts_without_torch():
    import subprocess
    import sys

    code = "import sys, harness.cli; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_duration_that_is_not_a_finite_number_is_refused(value):
    result = runner.invoke(app, ["estimate", "lenet5", "--json", "--duration-s", value])
    assert result.exit_code == 2
    assert "--duration-s must be a finite number >= 0" in result.output
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout


def test_a_batch_too_large_for_memory_is_one_line():
    result = runner.invoke(app, ["estimate", "lenet5", "--batch-size", str(10**13)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.startswith(
        f"error: --batch-size {10**13}: one batch of lenet5's input does not fit in memory"
    )


def test_json_output_has_no_nan():
    from harness.commands.common import json_safe

    report = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf"), "e": 2}}
    assert json.dumps(json_safe(report), allow_nan=False) == (
        '{"a": null, "b": [1.0, null], "c": {"d": null, "e": 2}}'
    )
