"""The suite runner end to end, on a fake powercap tree advancing at a known power."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import FakePowercap, FakeZone, memory_dir

from harness.rows.csvfile import read_rows
from harness.rows.merge import merge_runs
from harness.run.options import RunOptions, parse_shard, shard_cases
from harness.run.runner import run_suite
from harness.spec.suite import load_suite, parse_suite
from harness.spec.variants import CONTROL_LABEL

PACKAGE_W, DRAM_W = 20.0, 5.0

SMALL = """
[suite]
repetitions = 2
processes = 1
stable_max_other_cpu_pct = 100
warmup_iterations = 1
min_window_s = 0.2
idle_baseline_s = 0.3
timeline_hz = 20
train_epochs = 2
finetune_epochs = 1
batch_sizes = [32]
modes = ["inference"]

[[models]]
name = "lenet5"
variants = ["dense", { name = "magnitude", sparsity = 0.9 }, "semi-structured-2:4", "int8-dynamic"]
"""


@pytest.fixture(scope="module")
def powercap(tmp_path_factory):
    zones = [
        FakeZone("intel-rapl:0", "package-0", PACKAGE_W),
        FakeZone("intel-rapl:0:0", "core", 15.0),
        FakeZone("intel-rapl:0:1", "dram", DRAM_W),
    ]
    tree = FakePowercap(memory_dir(tmp_path_factory.mktemp("powercap")), zones).start()
    yield tree
    tree.stop()
    shutil.rmtree(tree.root, ignore_errors=True)


@pytest.fixture(scope="module")
def options(powercap, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return RunOptions(probes=["rapl"], powercap_root=powercap.root, cache_dir=cache)


@pytest.fixture(scope="module")
def default_run(options, tmp_path_factory):
    """The default suite, with fewer repetitions and shorter windows to keep CI quick."""
    suite = load_suite(None)
    suite.settings = dataclasses.replace(
        suite.settings,
        repetitions=2,
        min_window_s=0.25,
        idle_baseline_s=0.5,
        stable_max_other_cpu_pct=100,  # the windows are not judged busy here
        processes=1,  # one worker per group (tests/harness/run/test_rounds.py: several)
    )
    return run_suite(suite, options, out=tmp_path_factory.mktemp("runs") / "default")


def test_default_suite_measures_power_times_time(default_run):
    rows = read_rows(default_run / "measurements.csv")
    assert rows, "no measurement rows"
    totals: dict[tuple[str, str], float] = {}
    durations: dict[tuple[str, str], float] = {}
    for row in rows:
        key = (row["case_id"], row["repetition"])
        assert row["source"] == "counter" and row["valid"] == "true"
        if row["in_total"] == "true":
            totals[key] = totals.get(key, 0.0) + float(row["energy_j"])
            durations[key] = float(row["duration_s"])
    for key, energy_j in totals.items():
        assert energy_j == pytest.approx((PACKAGE_W + DRAM_W) * durations[key], rel=0.02), key
    assert all(0 <= float(row["other_cpu_pct"]) <= 100 for row in rows)  # windows >= 0.25 s
    domains = {(r["domain"], r["in_total"]) for r in rows}
    assert ("cpu:core-0", "false") in domains  # core is inside package: never added


def test_default_suite_case_table(default_run):
    cases = {r["case_id"]: r for r in read_rows(default_run / "cases.csv")}
    assert len(cases) == len(load_suite(None).cases)
    int8_training = cases["lenet5/int8-dynamic/training/bs64/cpu"]
    assert int8_training["status"] == "skipped" and "inference only" in int8_training["error"]
    dense = cases["lenet5/dense/inference/bs64/cpu"]
    assert dense["status"] == "ok" and float(dense["accuracy"]) > 0.9
    assert dense["measured_source"] == "counter"
    assert float(dense["energy_j_per_sample_ci95_low"]) <= float(dense["energy_j_per_sample_mean"])
    assert float(dense["est_dense_hw_energy_j_per_sample"]) > 0
    sparse = cases["lenet5/magnitude[sparsity=0.9]/inference/bs64/cpu"]
    assert float(sparse["sparsity"]) == pytest.approx(0.9, abs=0.01)
    assert float(sparse["est_sparse_ideal_energy_j_per_sample"]) < float(
        sparse["est_dense_hw_energy_j_per_sample"]
    )
    std, mean = float(dense["energy_j_per_sample_std"]), float(dense["energy_j_per_sample_mean"])
    assert float(dense["energy_j_per_sample_cv_pct"]) == pytest.approx(std / mean * 100)
    assert dense["stable"] in ("true", "false")
    assert (dense["stable"] == "false") == bool(dense["unstable_reason"])
    env = json.loads((default_run / "environment.json").read_text())
    assert env["carbon"]["intensity_g_per_kwh"] > 0
    assert {p["name"] for p in env["probes"]} >= {"rapl", "model", "nvml"}
    assert (default_run / "power_timeline.csv").is_file()


def test_interrupted_run_resumes_without_repeating_cases(options, tmp_path):
    # two groups (batch 32, batch 64): the run stops once the first group's rows are written
    text = SMALL.replace(', "semi-structured-2:4"', "").replace(
        "batch_sizes = [32]", "batch_sizes = [32, 64]"
    )
    text = text.replace('{ name = "magnitude", sparsity = 0.9 }, ', "")
    suite = parse_suite(text, "small.toml")
    out = tmp_path / "run"
    seen: list[str] = []

    def stop_after_the_first_group(case, row):
        seen.append(case.case_id)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, options, out=out, on_case_done=stop_after_the_first_group)
    kept = read_rows(out / "measurements.csv")
    first = sorted(r["case_id"] for r in read_rows(out / "cases.csv"))
    assert first == sorted(c.case_id for c in suite.cases if c.batch_size == 32)  # all of it
    assert len(seen) == 1 and seen[0] in first  # told once the group's rows were written

    resumed: list[str] = []
    run_suite(None, RunOptions(), resume=out, on_case_done=lambda c, r: resumed.append(c.case_id))
    assert sorted(resumed) == sorted(c.case_id for c in suite.cases if c.batch_size == 64)
    cases = read_rows(out / "cases.csv")
    assert sorted(r["case_id"] for r in cases) == sorted(c.case_id for c in suite.cases)
    rows = read_rows(out / "measurements.csv")
    assert rows[: len(kept)] == kept  # nothing written before the stop is lost or measured again
    keys = [(r["case_id"], r["repetition"], r["domain"]) for r in rows]
    assert len(keys) == len(set(keys))  # every row once
    assert {r["case_id"] for r in rows} == {r["case_id"] for r in cases if r["status"] == "ok"}
    # a case written after the resume is compared with dense, round by round
    by_id = {r["case_id"]: r for r in cases}
    int8_id, dense_id = (f"lenet5/{v}/inference/bs64/cpu" for v in ("int8-dynamic", "dense"))
    int8, dense = by_id[int8_id], by_id[dense_id]
    assert int8["case_id"] in resumed and dense["variant"] == "dense"
    own, ref = per_round(rows, int8_id), per_round(rows, dense_id)
    ratios = [own[k] / ref[k] for k in own if k in ref]
    geometric = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    assert float(int8["energy_vs_dense_ratio"]) == pytest.approx(geometric)


DENSE_32 = "lenet5/dense/inference/bs32/cpu"


def per_round(rows: list[dict[str, str]], case_id: str) -> dict[str, float]:
    """round -> the case's energy per sample (J) in it, from the undisturbed windows of
    measurements.csv rows."""
    energy: dict[str, list[float]] = {}
    for r in rows:
        if r["case_id"] == case_id and r["in_total"] == "true" and r["disturbed"] == "false":
            energy.setdefault(r["round"], [0.0, float(r["samples"])])[0] += float(r["energy_j"])
    return {k: e / n for k, (e, n) in energy.items()}


def test_failing_case_is_recorded_and_the_suite_goes_on(options, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    text = SMALL.replace(
        'name = "lenet5"',
        'name = "user_models:broken"\nvariants = ["dense"]\n[[models]]\n'
        'name = "user_models:hungry"\nvariants = ["dense"]\n[[models]]\nname = "lenet5"',
        1,
    )
    run_dir = run_suite(parse_suite(text, "s.toml"), options, out=tmp_path / "run")
    cases = {r["case_id"]: r for r in read_rows(run_dir / "cases.csv")}
    broken = cases["user_models:broken/dense/inference/bs32/cpu"]
    assert broken["status"] == "failed" and "always fails" in broken["error"]
    hungry = cases["user_models:hungry/dense/inference/bs32/cpu"]
    assert hungry["status"] == "failed"
    assert hungry["error"].startswith("out of memory: RuntimeError: ")
    assert cases["lenet5/dense/inference/bs32/cpu"]["status"] == "ok"


def test_shards_merge_into_the_unsharded_case_set(options, tmp_path):
    text = SMALL.replace("batch_sizes = [32]", "batch_sizes = [32, 16]").replace(
        ', "semi-structured-2:4", "int8-dynamic"', ""
    )
    suite = parse_suite(text, "small.toml")
    assert parse_shard("1/2") == (1, 2)
    shards = [
        run_suite(
            suite, RunOptions(**{**options.__dict__, "shard": (i, 2)}), out=tmp_path / f"s{i}"
        )
        for i in range(2)
    ]
    # a group (here: a batch size) is never split: dense, its control and the variant
    assert [len(shard_cases(suite.cases, (i, 2))) for i in range(2)] == [3, 3]
    assert {c.batch_size for c in shard_cases(suite.cases, (1, 2))} == {16}
    merged = merge_runs(shards, tmp_path / "merged")
    ids = sorted(r["case_id"] for r in read_rows(merged / "cases.csv"))
    assert ids == sorted(c.case_id for c in suite.cases)
    with pytest.raises(Exception, match="in both"):
        merge_runs([shards[0], shards[0]], tmp_path / "twice")


def test_run_command_prints_the_run_dir_last(powercap, options, tmp_path):
    import subprocess

    suite_file = tmp_path / "s.toml"
    suite_file.write_text(SMALL.replace('"semi-structured-2:4", "int8-dynamic"', ""))
    out = tmp_path / "cli-run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(suite_file),
            "--out",
            str(out),
            "--probe",
            "rapl",
            "--powercap-root",
            str(powercap.root),
            "--no-report",
            "--country",
            "FRA",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ENERGY_HARNESS_CACHE": str(options.cache_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    # one line per prepared model, its name whole (brackets are not markup)
    ready = [line for line in result.stdout.splitlines() if " ready (" in line]
    assert len(ready) == 2 and "model lenet5 magnitude[sparsity=0.9] ready" in ready[1]
    assert "headline (vs dense" in result.stdout and "Warning" not in result.stderr
    case = read_rows(out / "cases.csv")[0]
    assert float(case["carbon_intensity_g_per_kwh"]) == pytest.approx(56.039, rel=0.01)


def test_codecarbon_peer_figure_is_recorded_beside_ours(options, tmp_path):
    text = SMALL.replace(
        'variants = ["dense", { name = "magnitude", sparsity = 0.9 }, "semi-structured-2:4", '
        '"int8-dynamic"]',
        'variants = ["dense"]',
    )
    suite = parse_suite(text, "peer.toml")
    assert len(suite.cases) == 1
    peer_options = RunOptions(**{**options.__dict__, "peer": "codecarbon"})
    run_dir = run_suite(suite, peer_options, out=tmp_path / "peer")
    (case,) = read_rows(run_dir / "cases.csv")
    assert case["status"] == "ok", case["error"]
    assert float(case["peer_energy_j_per_sample"]) > 0
    assert case["measured_source"] == "counter"  # the peer never enters our figure
    assert json.loads((run_dir / "environment.json").read_text())["peer"] == "codecarbon"


def test_calibrate_from_a_finished_run_reports_leave_one_out_per_case(default_run, tmp_path):
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "calibrate",
            "--from",
            str(default_run),
            "--json",
            "--out",
            str(tmp_path / "fitted.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = read_rows(default_run / "cases.csv")
    ok = [r["case_id"] for r in rows if r["status"] == "ok" and r["variant"] != CONTROL_LABEL]
    assert sorted(c["case"] for c in report["cases"]) == sorted(ok)
    assert report["energy_source"] == ["counter"]
    assert (tmp_path / "fitted.toml").is_file()


def test_sigterm_stops_the_cli_run_keeping_rows_and_resume_finishes(powercap, options, tmp_path):
    import signal
    import subprocess
    import time

    suite_file = tmp_path / "s.toml"
    suite_file.write_text(SMALL.replace("repetitions = 2", "repetitions = 3"))
    out = tmp_path / "run"
    base = [sys.executable, "-m", "harness", "run"]
    flags = ["--probe", "rapl", "--powercap-root", str(powercap.root), "--no-report"]
    env = {**os.environ, "ENERGY_HARNESS_CACHE": str(options.cache_dir)}
    child = subprocess.Popen(
        [*base, str(suite_file), "--out", str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 300
    while not read_rows(out / "cases.csv") and time.monotonic() < deadline:
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 143, stderr  # 128 + SIGTERM, as `measure` exits
    assert stdout.strip().splitlines()[-1] == str(out)
    done = {r["case_id"] for r in read_rows(out / "cases.csv")}
    assert 1 <= len(done) < 5
    resumed = subprocess.run(
        [*base, "--resume", str(out), "--no-report"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    cases = read_rows(out / "cases.csv")
    assert len(cases) == len({r["case_id"] for r in cases}) == 5


def test_cases_on_a_missing_gpu_are_skipped_with_the_reason(options, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the cases would run")
    text = SMALL.replace('modes = ["inference"]', 'modes = ["inference"]\ndevices = ["cuda"]')
    run_dir = run_suite(parse_suite(text, "gpu.toml"), options, out=tmp_path / "run")
    cases = read_rows(run_dir / "cases.csv")
    assert len(cases) == 5  # four and the control
    assert all(c["status"] == "skipped" and "no CUDA GPU" in c["error"] for c in cases)
    assert read_rows(run_dir / "measurements.csv") == []


def test_a_suite_none_of_whose_cases_can_run_says_so_first_and_exits_3(powercap, tmp_path):
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the cases would run")
    suite_file = tmp_path / "gpu.toml"
    suite_file.write_text(
        SMALL.replace('modes = ["inference"]', 'modes = ["inference"]\ndevices = ["cuda"]')
    )
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(suite_file), "--out", str(tmp_path / "r")]
        + ["--probe", "rapl", "--powercap-root", str(powercap.root), "--no-report"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert result.returncode == 3, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("none of the 5 cases can run here: device 'cuda': torch sees no")
    assert "measuring idle power" not in result.stdout
    assert sum("no CUDA GPU" in line for line in lines) == 1 + 5  # said once; the 5 reasons below
    assert "no case finished: every case of" in result.stderr


def test_bad_run_settings_fail_before_a_run_directory_is_made(options, tmp_path):
    from harness.errors import EnergyHarnessError

    suite = parse_suite(SMALL, "small.toml")
    bad_carbon = RunOptions(**{**options.__dict__, "country": "XYZ"})
    with pytest.raises(EnergyHarnessError, match="unknown country code 'XYZ'"):
        run_suite(suite, bad_carbon, out=tmp_path / "a")
    bad_probe = RunOptions(**{**options.__dict__, "probes": ["nope"]})
    with pytest.raises(EnergyHarnessError, match="unknown probe 'nope'"):
        run_suite(suite, bad_probe, out=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_preparation_is_measured_and_inference_variants_get_a_break_even(default_run):
    cases = [r for r in read_rows(default_run / "cases.csv") if r["status"] == "ok"]
    by_id = {r["case_id"]: r for r in cases}
    dense = by_id["lenet5/dense/inference/bs64/cpu"]
    for row in cases:  # the fake machine draws 25 W while it trains and fine-tunes too
        energy_j, duration_s = float(row["prepare_energy_j"]), float(row["prepare_duration_s"])
        assert energy_j == pytest.approx((PACKAGE_W + DRAM_W) * duration_s, rel=0.02, abs=0.1)
        assert row["prepare_energy_source"] == "counter"
        assert row["prepare_energy_origin"] in ("run", "cache")
        if row["variant"] not in ("dense", CONTROL_LABEL):  # made from the trained dense
            total = float(dense["prepare_energy_j"]) + energy_j
            assert float(row["prepare_total_energy_j"]) == pytest.approx(total, rel=1e-9)
    assert float(dense["prepare_energy_j"]) > 0 and dense["prepare_energy_origin"] == "run"
    variants = [r for r in cases if r["variant"] not in ("dense", CONTROL_LABEL)]
    assert variants
    for row in variants:
        if row["mode"] != "inference":
            assert row["break_even_inferences"] == "", row["case_id"]
            continue
        if row["energy_vs_dense_beyond_noise"] != "true":
            assert row["break_even_inferences"] == "never", row["case_id"]
            assert "noise" in row["break_even_note"] or "as much energy" in row["break_even_note"]
            continue
        saving = float(dense["energy_j_per_sample_mean"]) * (
            1 - float(row["energy_vs_dense_ratio"])
        )
        expected = float(row["prepare_energy_j"]) / saving if saving > 0 else "never"
        found = row["break_even_inferences"]
        if expected == "never":
            assert found == "never"
        else:
            assert float(found) == pytest.approx(expected)
    _the_summary_and_the_report_show_the_account(default_run, variants)


def _the_summary_and_the_report_show_the_account(run_dir: Path, variants: list[dict]) -> None:
    from rich.console import Console

    from harness.report.page import group_tables
    from harness.report.terminal import print_run_summary
    from harness.report.views import build_cases
    from harness.rows.repetitions import load_run_repetitions

    console = Console(record=True, width=100)
    print_run_summary(run_dir, console)
    text = " ".join(console.export_text().split())
    inference = [r for r in variants if r["mode"] == "inference"]
    for row in inference:
        assert f"{row['case_id']}: made in " in text
    assert text.count("break-even vs dense") >= len(inference)
    reps, _ = load_run_repetitions(run_dir)
    views = build_cases(read_rows(run_dir / "cases.csv"), reps)
    cells = [r for t in group_tables(views) for r in t["rows"] if r.get("finished")]
    assert all(r["prepare"].endswith(("this run", "from the cache")) for r in cells)
    assert sum("break-even" in r["prepare_note"] for r in cells) == len(inference)


def test_the_static_term_is_the_measured_idle_power(default_run):
    rows = read_rows(default_run / "measurements.csv")
    ok = [r for r in read_rows(default_run / "cases.csv") if r["status"] == "ok"]
    assert ok
    for case in ok:
        idle_w = sum(
            float(r["idle_power_w"])
            for r in rows
            if r["case_id"] == case["case_id"]
            and r["in_total"] == "true"
            and r["repetition"] == "0"
        )
        assert idle_w == pytest.approx(PACKAGE_W + DRAM_W, rel=0.03)
        assert float(case["estimate_static_power_w"]) == pytest.approx(idle_w, rel=1e-6)
        assert case["estimate_static_source"].startswith("idle baseline of this run")
        # the fake machine draws 25 W idle or busy: the estimate's static part (idle power x
        # step time / batch) is then the whole measured energy per sample
        assert float(case["est_dense_hw_static_j"]) == pytest.approx(
            float(case["energy_j_per_sample_mean"]), rel=0.03
        )
        # `auto` chose the server profile scaled to this CPU, and said so
        assert case["estimate_profile"].startswith("x86-server-cpu@")
        assert case["estimate_profile_note"].startswith("auto: CPU")
        assert case["precision"] == "fp32" and case["estimate_power_capped"] == "false"
    assert {r["precision"] for r in rows} == {"fp32"}


def test_one_error_definition_in_cases_csv_and_the_cli_summary(default_run):
    from rich.console import Console

    from harness.estimate.error import ESTIMATE_ERROR_DEFINITION
    from harness.report.terminal import print_run_summary

    ok = [r for r in read_rows(default_run / "cases.csv") if r["status"] == "ok"]
    for case in ok:  # totals against totals, signed as (estimated - measured) / measured
        estimated = float(case["est_dense_hw_energy_j_per_sample"])
        measured = float(case["energy_j_per_sample_mean"])
        error = float(case["estimate_error_pct"])
        assert error == pytest.approx(100 * (estimated - measured) / measured)
        # the dynamic parts are the rest: the static part equals the measured energy here
        dynamic = sum(float(case[f"est_dense_hw_{p}_j"]) for p in ("compute", "storage"))
        assert error == pytest.approx(100 * dynamic / measured, rel=0.05, abs=0.5)
    console = Console(record=True, width=400)
    print_run_summary(default_run, console)
    text = console.export_text()
    assert " ".join(ESTIMATE_ERROR_DEFINITION.split()) in " ".join(text.split())
    for case in ok:
        assert f"{float(case['estimate_error_pct']):+.1f}" in text


def test_precision_runs_bf16_on_a_cpu_and_skips_what_it_cannot_run(options, tmp_path):
    import torch

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("torch has no bfloat16 CPU kernels here")
    text = SMALL.replace("[suite]", '[suite]\nprecision = "bf16"', 1)
    run_dir = run_suite(parse_suite(text, "bf16.toml"), options, out=tmp_path / "bf16")
    cases = {r["variant"]: r for r in read_rows(run_dir / "cases.csv")}
    dense = cases["dense"]
    assert dense["status"] == "ok" and dense["precision"] == "bf16"
    assert float(dense["flops_bf16"]) > 0 and float(dense["flops_fp32"] or 0) == 0
    assert cases["int8-dynamic"]["status"] == "skipped"
    assert "own number format" in cases["int8-dynamic"]["error"]
    assert {r["precision"] for r in read_rows(run_dir / "measurements.csv")} == {"bf16"}
    tf32 = run_suite(
        parse_suite(SMALL.replace("[suite]", '[suite]\nprecision = "tf32"', 1), "tf32.toml"),
        options,
        out=tmp_path / "tf32",
    )
    skipped = {r["variant"]: r for r in read_rows(tf32 / "cases.csv")}
    assert all(r["status"] == "skipped" for r in skipped.values())
    assert "TF32 is a tensor-core format of NVIDIA GPUs" in skipped["dense"]["error"]
    assert read_rows(tf32 / "measurements.csv") == []


def test_a_failing_user_factory_fails_its_case_in_one_line(options, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    text = SMALL.replace('name = "lenet5"', 'name = "user_models:raises"\nvariants = ["dense"]', 1)
    text = text.replace(
        'variants = ["dense", { name = "magnitude", sparsity = 0.9 }, "semi-structured-2:4", '
        '"int8-dynamic"]\n',
        "",
    )
    run_dir = run_suite(parse_suite(text, "s.toml"), options, out=tmp_path / "run")
    (case,) = read_rows(run_dir / "cases.csv")
    assert case["status"] == "failed"
    assert case["error"] == (
        "model 'user_models:raises': the factory user_models:raises() raised ValueError: "
        "hidden size must be even, got 3; fix the factory or the arguments it is given"
    )


HOG_LAUNCHER = """
import subprocess, sys
quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
hog = [sys.executable, "-c", "while True: pass"]
hogs = [subprocess.Popen(hog, **quiet) for _ in range(int(sys.argv[1]))]
print(" ".join(str(h.pid) for h in hogs))
"""


def start_hogs(count: int) -> list[int]:
    """`count` processes burning a CPU each, outside this process's tree: the launcher
    exits at once, so they are orphans (and hold none of its pipes)."""
    import subprocess

    launched = subprocess.run(
        [sys.executable, "-c", HOG_LAUNCHER, str(count)], capture_output=True, text=True
    )
    return [int(pid) for pid in launched.stdout.split()]


def test_a_run_beside_cpu_hogs_marks_its_cases_unstable_and_says_why(powercap, options, tmp_path):
    import signal
    import subprocess

    text = SMALL.replace("repetitions = 2", "repetitions = 3").replace("timeline_hz = 20", "")
    text = text.replace("stable_max_other_cpu_pct = 100", "stable_max_other_cpu_pct = 10")
    text = text.replace(
        ', { name = "magnitude", sparsity = 0.9 }, "semi-structured-2:4", "int8-dynamic"', ""
    )
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(text)
    run_suite(parse_suite(text, "s.toml"), options, out=tmp_path / "quiet")  # trains, caches
    out = tmp_path / "busy"
    hogs = start_hogs(max(1, (os.cpu_count() or 2) // 2))  # half the CPUs: ~50 % busy
    try:
        result = subprocess.run(
            [sys.executable, "-m", "harness", "run", str(suite_file), "--out", str(out)]
            + ["--probe", "rapl", "--powercap-root", str(powercap.root), "--no-report"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "ENERGY_HARNESS_CACHE": str(options.cache_dir), "COLUMNS": "300"},
        )
    finally:
        for pid in hogs:
            os.kill(pid, signal.SIGKILL)
    assert result.returncode == 0, result.stderr
    (case,) = read_rows(out / "cases.csv")
    assert case["status"] == "ok", case["error"]
    # half the logical CPUs had a hog beside the run, sharing them with the run's own
    # threads: 20 to 50 % of the CPUs, over the 10 % limit
    assert float(case["other_cpu_pct_max"]) > 10
    assert case["stable"] == "false"
    assert case["unstable_reason"].startswith("other processes used up to")
    windows = [float(r["other_cpu_pct"]) for r in read_rows(out / "measurements.csv")]
    assert max(windows) == pytest.approx(float(case["other_cpu_pct_max"]))
    printed = " ".join(result.stdout.split())
    assert f"warning: {case['case_id']} is unstable: other processes used up to" in printed
    assert "more repetitions" in printed


def test_cases_csv_holds_each_variant_against_dense(default_run):
    from harness.rows.stats import paired_ratio_ci95
    from harness.spec.train_config import TrainConfig

    cases = {r["case_id"]: r for r in read_rows(default_run / "cases.csv")}
    rows = read_rows(default_run / "measurements.csv")
    dense = cases["lenet5/dense/training/bs64/cpu"]
    structured = cases["lenet5/structured[ratio=0.5]/training/bs64/cpu"]
    own, ref = per_round(rows, structured["case_id"]), per_round(rows, dense["case_id"])
    _, low, high = paired_ratio_ci95([own[k] / ref[k] for k in sorted(own) if k in ref])
    # the interval from the rounds in measurements.csv, paired
    assert float(structured["energy_vs_dense_ratio_ci95_low"]) == pytest.approx(low)
    assert float(structured["energy_vs_dense_ratio_ci95_high"]) == pytest.approx(high)
    floor = float(structured["energy_vs_dense_noise_floor_pct"])
    ratio = float(structured["energy_vs_dense_ratio"])
    judged = structured["energy_vs_dense_not_judged"] == ""
    assert not judged  # two rounds: fewer than the 3 pairs a verdict needs, and it says so
    assert structured["energy_vs_dense_not_judged"].startswith("only 2 rounds measured both")
    beyond = (high < 1 or low > 1) and abs(math.log(ratio)) > math.log1p(floor / 100) and judged
    assert structured["energy_vs_dense_beyond_noise"] == str(beyond).lower()
    pp = (float(structured["accuracy"]) - float(dense["accuracy"])) * 100
    assert float(structured["accuracy_vs_dense_pp"]) == pytest.approx(pp)
    assert dense["energy_vs_dense_ratio"] == ""  # the reference itself
    assert cases["lenet5/int8-dynamic/training/bs64/cpu"]["energy_vs_dense_ratio"] == ""
    # channels are gone, not zeroed: sparsity 0 while most parameters are removed
    assert float(structured["sparsity"]) == 0.0
    removed = 1 - int(structured["nonzero_params"]) / int(dense["params"])
    assert float(structured["params_removed"]) == pytest.approx(removed) and removed > 0.5
    # fine-tuning at the training rate, written as the rate used
    assert f"fine_tune_lr={TrainConfig().lr}" in structured["variant_params"]
