"""compare_runs: per-repetition energy per sample, ratio B/A with CI, Welch's test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from scipy import stats
from typer.testing import CliRunner

from harness.commands.report import register
from harness.errors import EnergyHarnessError
from harness.report.compare import (
    BOTH,
    ONLY_A,
    ONLY_B,
    compare_cases,
    compare_runs,
    run_differences,
    verdict_pairs,
)
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender
from harness.rows.repetitions import case_repetitions


def write_run(
    run_dir: Path,
    cases: dict[str, list[float]],
    samples: int = 100,
    extra_rows: list[dict] | None = None,
    source: str = "counter",
    case_columns: dict[str, dict] | None = None,
    windows_per_process: int = 1,
) -> Path:
    """A run whose case `c` repetition `i` uses cases[c][i] J/sample (package 70%, dram 30%).

    `source`: of every row; `case_columns`: more cases.csv columns per case; repetitions
    ran `windows_per_process` to a worker process (one each by default, as a suite's
    `processes = 0` does)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    measurements = CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS)
    case_file = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    for case_id, per_sample in cases.items():
        for rep, value in enumerate(per_sample):
            for domain, share in (("cpu:package-0", 0.7), ("cpu:dram-0", 0.3)):
                measurements.append(
                    {
                        "run_id": run_dir.name,
                        "case_id": case_id,
                        "repetition": rep,
                        "round": rep,
                        "process": rep // windows_per_process,
                        "probe": "rapl",
                        "domain": domain,
                        "source": source,
                        "in_total": True,
                        "samples": samples,
                        "energy_j": value * share * samples,
                        "valid": True,
                    }
                )
        more = (case_columns or {}).get(case_id, {})
        case_file.append({"run_id": run_dir.name, "case_id": case_id, "status": "ok", **more})
    measurements.append_many(extra_rows or [])
    measurements.close()
    case_file.close()
    return run_dir


def noisy(mean: float, n: int = 5) -> list[float]:
    """Values around `mean` with a fixed, small spread (+-2%)."""
    offsets = [-0.02, 0.01, 0.0, -0.01, 0.02, 0.005, -0.005][:n]
    return [mean * (1 + o) for o in offsets]


def test_per_repetition_energy_sums_in_total_rows_and_drops_invalid_repetitions(tmp_path):
    row = {"case_id": "c", "probe": "rapl", "source": "counter", "samples": 50, "valid": True}
    rows = [
        # repetition 0: 30 J + 20 J in total over 50 samples; a peer row that is not in total
        {**row, "repetition": 0, "domain": "cpu:package-0", "in_total": True, "energy_j": 30.0},
        {**row, "repetition": 0, "domain": "cpu:dram-0", "in_total": True, "energy_j": 20.0},
        {**row, "repetition": 0, "domain": "cpu:core-0", "in_total": False, "energy_j": 999.0},
        # repetition 1: the package counter was invalid -> the whole repetition is unusable
        {**row, "repetition": 1, "domain": "cpu:package-0", "in_total": True, "valid": False},
        {**row, "repetition": 1, "domain": "cpu:dram-0", "in_total": True, "energy_j": 20.0},
        # repetition 2: 60 J + 15 J over 50 samples
        {**row, "repetition": 2, "domain": "cpu:package-0", "in_total": True, "energy_j": 60.0},
        {**row, "repetition": 2, "domain": "cpu:dram-0", "in_total": True, "energy_j": 15.0},
    ]
    run = write_run(tmp_path / "r", {}, extra_rows=rows)
    from harness.rows.csvfile import read_rows

    reps = case_repetitions(read_rows(run / "measurements.csv"))["c"]
    assert reps.energy_j_per_sample == pytest.approx([1.0, 1.5])
    assert reps.repetitions == ["0", "2"]
    assert reps.unusable == ["1"]
    assert reps.domain_energy_j_per_sample[1][("rapl", "cpu:package-0", "counter")] == 1.2


def test_ratio_equals_hand_computed_and_clear_change_is_significant(tmp_path):
    a = write_run(tmp_path / "a", {"lenet": noisy(1.0), "same": noisy(3.0)})
    b = write_run(tmp_path / "b", {"lenet": noisy(2.0), "same": noisy(3.0)})
    result = {r.case_id: r for r in compare_runs(a, b)}

    lenet = result["lenet"]
    assert lenet.presence == BOTH
    assert (lenet.n_a, lenet.n_b) == (5, 5)
    assert lenet.mean_a_j_per_sample == pytest.approx(1.0)
    assert lenet.ratio_b_over_a == pytest.approx(2.0)
    assert lenet.ratio_ci95_low < 2.0 < lenet.ratio_ci95_high
    assert lenet.ratio_ci95_high - lenet.ratio_ci95_low < 0.2
    assert lenet.p_value < 1e-6 and lenet.significant

    same = result["same"]
    assert same.ratio_b_over_a == pytest.approx(1.0)
    assert same.p_value == pytest.approx(1.0)
    assert not same.significant


def test_ci_is_delta_method_on_log_ratio_with_welch_df():
    # a: mean 2, s^2 = 2; b: mean 4, s^2 = 8 -> var(log R) = 2/(2*4) + 8/(2*16) = 0.5,
    # Welch-Satterthwaite df = 0.5^2 / (0.25^2 + 0.25^2) = 2, t(0.975, 2) = 4.302653
    r = compare_cases([1.0, 3.0], [2.0, 6.0], "x")
    half = 4.302653 * math.sqrt(0.5)
    assert r.ratio_b_over_a == pytest.approx(2.0)
    assert r.ratio_ci95_low == pytest.approx(2.0 * math.exp(-half), rel=1e-5)
    assert r.ratio_ci95_high == pytest.approx(2.0 * math.exp(half), rel=1e-5)


def test_cases_only_in_one_run_and_n1_are_reported(tmp_path):
    a = write_run(tmp_path / "a", {"both": [1.0], "gone": noisy(1.0)})
    b = write_run(tmp_path / "b", {"both": noisy(1.5), "new": noisy(2.0)})
    result = {r.case_id: r for r in compare_runs(a, b)}
    assert result["gone"].presence == ONLY_A and result["gone"].n_a == 5
    assert result["new"].presence == ONLY_B and result["new"].mean_b_j_per_sample == 2.0
    assert [r.case_id for r in compare_runs(a, b)] == ["both", "gone", "new"]
    both = result["both"]
    assert both.ratio_b_over_a == pytest.approx(1.5)
    assert both.ratio_ci95_low is None and both.p_value is None and not both.significant
    assert "one process in A: its run-to-run variance is not sampled, so no p-value" in both.note
    assert both.smallest_detectable_pct is None  # one window in A: not even that


def test_one_process_a_side_gives_the_smallest_detectable_change_not_a_p_value(tmp_path):
    a = write_run(tmp_path / "a", {"c": noisy(1.0)}, windows_per_process=5)
    b = write_run(tmp_path / "b", {"c": noisy(1.5)})
    (r,) = compare_runs(a, b)
    assert (r.n_a, r.windows_a, r.n_b, r.windows_b) == (1, 5, 5, 5)
    assert r.p_value is None and not r.significant and r.ratio_ci95_low is None
    low, high = stats_ratio_ci(noisy(1.0), noisy(1.5))
    assert r.smallest_detectable_pct == pytest.approx((math.sqrt(high / low) - 1) * 100)
    assert f"smallest detectable change ±{r.smallest_detectable_pct:.1f} %" in r.note


def stats_ratio_ci(a, b):
    from harness.rows.stats import ratio_ci95_log_delta

    return ratio_ci95_log_delta(a, b)


def simulated_run(rng, processes: int, windows: int) -> list[list[float]]:
    """One run of one case: per process a machine state of its own (3 % spread), per
    window a small noise (0.5 %): what a real run's windows look like."""
    states = [rng.gauss(0, 0.03) for _ in range(processes)]
    return [[math.exp(state + rng.gauss(0, 0.005)) for _ in range(windows)] for state in states]


def test_two_runs_from_one_distribution_are_flagged_at_the_nominal_rate_not_more():
    import random

    rng = random.Random(7)
    by_process = by_window = 0
    trials = 400
    for _ in range(trials):
        # rounds spread over processes: 3 processes of 2 windows each, tested by process
        a, b = simulated_run(rng, 3, 2), simulated_run(rng, 3, 2)
        means = ([sum(p) / len(p) for p in a], [sum(p) / len(p) for p in b])
        flat = ([v for p in a for v in p], [v for p in b for v in p])
        by_process += compare_cases(*means, windows=flat).significant
        # five windows back to back in one process, tested by window: the old design
        (a,), (b,) = simulated_run(rng, 1, 5), simulated_run(rng, 1, 5)
        by_window += compare_cases(a, b).significant
    assert by_process / trials <= 0.08  # alpha 0.05, and the noise of 400 trials
    assert by_window / trials > 0.5  # windows of one process share its state


def test_an_a_a_compare_of_twelve_cases_flags_none_after_holm(tmp_path):
    import random

    rng = random.Random(3)
    runs = []
    for name in "ab":
        cases = {f"case-{k}": [v for p in simulated_run(rng, 5, 1) for v in p] for k in range(12)}
        runs.append(write_run(tmp_path / name, cases))
    result = compare_runs(*runs)
    assert len(result) == 12 and all(r.p_value is not None for r in result)
    assert sum(r.significant for r in result) <= 1


def test_missing_run_dir_or_measurements_is_a_clear_error(tmp_path):
    run = write_run(tmp_path / "a", {"c": [1.0, 1.1]})
    with pytest.raises(EnergyHarnessError, match="does not exist"):
        compare_runs(run, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnergyHarnessError, match="measurements.csv is missing"):
        compare_runs(tmp_path / "empty", run)


def cli_app() -> typer.Typer:
    """Only our commands: importing harness.cli would also load torch (slow)."""
    app = typer.Typer()
    register(app)
    return app


def test_compare_command_marks_significant_cases(tmp_path):
    app = cli_app()
    a = write_run(tmp_path / "a", {"lenet": noisy(1.0), "same": noisy(3.0)})
    b = write_run(tmp_path / "b", {"lenet": noisy(2.0), "same": noisy(3.0)})
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    data = {d["case_id"]: d for d in json.loads(result.stdout)}
    assert data["lenet"]["significant"] and not data["same"]["significant"]

    table = runner.invoke(app, ["compare", str(a), str(b)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    lines = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    assert lines["lenet"].rstrip().endswith("*") and "*" not in lines["same"]

    missing = runner.invoke(app, ["compare", str(a), str(tmp_path / "nope")])
    assert missing.exit_code == 2


def test_p_values_are_holm_adjusted_for_the_cases_compared(tmp_path):
    # three cases whose raw Welch p-values are each a little under 0.05
    a_values = {c: [1.0, 1.1, 0.9] for c in ("x", "y", "z")}
    b_values = {"x": [1.21, 1.3, 1.1], "y": [1.22, 1.32, 1.12], "z": [1.25, 1.35, 1.15]}
    a = write_run(tmp_path / "a", a_values)
    b = write_run(tmp_path / "b", b_values)
    result = {r.case_id: r for r in compare_runs(a, b)}
    raw = {c: stats.ttest_ind(a_values[c], b_values[c], equal_var=False).pvalue for c in "xyz"}
    assert all(r.p_value == pytest.approx(raw[c]) for c, r in result.items())
    order = sorted("xyz", key=raw.get)  # Holm by hand: 3 p1, max(.., 2 p2), max(.., p3)
    expected, running = {}, 0.0
    for rank, c in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[c]))
        expected[c] = running
    assert {c: r.p_value_holm for c, r in result.items()} == pytest.approx(expected)
    assert min(raw.values()) < 0.05 and not any(r.significant for r in result.values())


def test_an_unstable_case_is_never_called_significant_and_is_warned_about(tmp_path):
    why = "other processes used up to 48 % of the CPUs during its windows (above 25 %)"
    a = write_run(tmp_path / "a", {"lenet": noisy(1.0)})
    b = write_run(
        tmp_path / "b",
        {"lenet": noisy(2.0)},
        case_columns={"lenet": {"stable": False, "unstable_reason": why}},
    )
    (r,) = compare_runs(a, b)
    assert r.p_value < 1e-6 and not r.significant
    assert r.unstable_b == why and r.unstable_a == "" and "unstable in B" in r.note
    table = CliRunner().invoke(cli_app(), ["compare", str(a), str(b)], env={"COLUMNS": "250"})
    assert f"warning: lenet is unstable in run B: {why}" in " ".join(table.stdout.split())


def test_each_sides_source_is_shown_beside_the_ratio(tmp_path):
    a = write_run(tmp_path / "a", {"lenet": noisy(1.0)})
    b = write_run(tmp_path / "b", {"lenet": noisy(1.0)}, source="model")
    (r,) = compare_runs(a, b)
    assert (r.source_a, r.source_b) == ("counter", "model")
    assert "A is measured, B is MODELLED" in r.note
    table = CliRunner().invoke(cli_app(), ["compare", str(a), str(b)], env={"COLUMNS": "250"})
    assert "A measured, B MODELLED;" in table.stdout  # every case alike: said once
    # cases whose sources differ: each row says its own, beside the ratio
    write_run(tmp_path / "a", {"other": noisy(1.0)})
    write_run(tmp_path / "b", {"other": noisy(1.0)})
    table = CliRunner().invoke(cli_app(), ["compare", str(a), str(b)], env={"COLUMNS": "250"})
    (line,) = [row for row in table.stdout.splitlines() if row.startswith("lenet")]
    assert "1.000 [" in line and line.rstrip().endswith("measured / MODELLED")


def test_the_compare_table_reads_at_80_columns(tmp_path):
    cases = {
        "lenet5/dense/inference/bs64/cpu": noisy(1.0e-3),
        "lenet5/magnitude[sparsity=0.9]/training/bs64/cpu": noisy(2.0e-3),
    }
    a = write_run(tmp_path / "a", cases, source="model")
    b = write_run(
        tmp_path / "b",
        {**cases, "lenet5/magnitude[sparsity=0.9]/training/bs64/cpu": noisy(1.0e-3)},
        source="model",
    )
    result = CliRunner().invoke(cli_app(), ["compare", str(a), str(b)], env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    # short labels (what differs between the cases), whole; ratio and interval in brackets
    (row,) = [line for line in lines if line.startswith("magnitude sparsity=0.9")]
    ratio = stats.tmean(noisy(1.0e-3)) / stats.tmean(noisy(2.0e-3))
    assert f"{ratio:.3f} [" in row and row.rstrip().endswith("*")
    assert "training" in row or "training" in lines[lines.index(row) + 1]
    assert "A MODELLED, B MODELLED" in " ".join(result.stdout.split())  # said once


def test_compare_says_when_the_runs_differ_in_precision_probes_machine_or_suite(tmp_path):
    a = write_run(tmp_path / "a", {"c": noisy(1.0)})
    b = write_run(tmp_path / "b", {"c": noisy(1.0)})
    env = {"suite_settings": {"precision": "fp32"}, "probes_used": {"rapl": {}}}
    machine = {"hostname": "n1", "cpu_model": "Xeon", "logical_cpus": 2}
    (a / "environment.json").write_text(json.dumps({**env, **machine}))
    (b / "environment.json").write_text(
        json.dumps(
            {
                "suite_settings": {"precision": "bf16"},
                "probes_used": {"rapl": {}, "nvml": {}},
                **machine,
            }
        )
    )
    (a / "suite.toml").write_text("[suite]\nrepetitions = 5\n")
    (b / "suite.toml").write_text("[suite]\nrepetitions = 3\n")
    assert run_differences(a, b) == [
        "the runs differ in precision: A fp32, B bf16",
        "the runs differ in probes: A rapl, B nvml, rapl",
        "the runs differ in suite: their suite.toml files are not the same",
    ]
    table = CliRunner().invoke(cli_app(), ["compare", str(a), str(b)], env={"COLUMNS": "200"})
    assert table.stdout.startswith("note: the runs differ in precision: A fp32, B bf16\n")
    assert run_differences(a, a) == []


def test_each_variants_verdict_vs_dense_is_held_against_the_other_run(tmp_path):
    group = {"model": "lenet5", "mode": "inference", "batch_size": 64, "device": "cpu"}
    columns = {
        "d": {**group, "variant": "dense"},
        "m": {**group, "variant": "magnitude"},
        "s": {**group, "variant": "structured"},
    }
    jitter = [0.01, -0.01, 0.0, 0.02, -0.02]  # other than dense's: the ratios spread

    def spread(mean: float) -> list[float]:
        return [d * mean * (1 + j) for d, j in zip(noisy(1.0), jitter, strict=True)]

    a = write_run(
        tmp_path / "a",
        {"d": noisy(1.0), "m": spread(0.99), "s": spread(0.6)},
        case_columns=columns,
    )
    b = write_run(
        tmp_path / "b",
        {"d": noisy(1.0), "m": spread(0.9), "s": spread(0.605)},
        case_columns=columns,
    )
    pairs = {p.case_id: p for p in verdict_pairs(a, b)}
    assert set(pairs) == {"m", "s"}  # every variant, paired with dense round by round
    s, m = pairs["s"], pairs["m"]
    assert s.a_in_b and s.b_in_a and s.same_verdict and s.a.beyond_noise
    assert not m.a_in_b and not m.same_verdict  # -1 % within noise in A, -10 % in B
    table = CliRunner().invoke(cli_app(), ["compare", str(a), str(b)], env={"COLUMNS": "100"})
    *_, row = [line for line in table.stdout.splitlines() if line.startswith("m ")]
    assert "NO / NO" in row and row.rstrip().endswith("~ / - CHANGED")
