"""The run summary at 80 columns: variant names stay whole, the peer tool's figure shows."""

from __future__ import annotations

from rich.console import Console

from harness.report.terminal import RunCases, group_table, peer_lines

ROWS = [
    {
        "case_id": "lenet5/dense/inference/bs64/cpu",
        "variant": "dense",
        "status": "ok",
        "energy_j_per_sample_mean": "0.00187",
        "energy_j_per_sample_ci95_low": "0.00076",
        "energy_j_per_sample_ci95_high": "0.00479",
        "measured_source": "model",
        "accuracy": "0.97",
        "estimate_error_pct": "5",
        "peer_energy_j_per_sample": "0.0019",
    },
    {
        "case_id": "lenet5/magnitude[sparsity=0.5]/inference/bs64/cpu",
        "variant": "magnitude[sparsity=0.5,fine_tune_epochs=3]",
        "status": "ok",
        "energy_j_per_sample_mean": "0.000459123",
        "energy_j_per_sample_ci95_low": "0.000281",
        "energy_j_per_sample_ci95_high": "0.0758",
        "measured_source": "model",
        "accuracy": "0.97",
        "estimate_error_pct": "-15.1",
    },
]
GROUP = ("lenet5", "digits", "inference", "64", "cpu", "fp32")


def test_a_wide_interval_never_cuts_a_variant_name():
    console = Console(width=80, record=True)
    console.print(group_table(GROUP, ROWS, {}))
    text = console.export_text()
    for word in ("magnitude", "sparsity=0.5", "fine_tune_epochs=3"):
        assert word in text  # each word on one line
    assert "0.459 mJ [0.281, 75.800]" in text  # and the interval whole
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_peer_tools_figure_is_in_the_summary():
    lines = peer_lines(RunCases({GROUP: ROWS}, {}))
    assert lines == [
        "codecarbon (peer tool) for lenet5/dense/inference/bs64/cpu: 1.9 mJ per sample "
        "(ours 1.87 mJ, MODELLED)"
    ]


def test_the_summary_says_the_runs_co2_and_where_its_intensity_came_from(tmp_path):
    import json

    from harness.report.terminal import carbon_line
    from harness.rows.carbon import carbon_settings

    rows = [{**ROWS[0], "energy_j": "3.6", "n": "5"}]  # 18 J measured in all
    (tmp_path / "environment.json").write_text(
        json.dumps({"carbon": carbon_settings(pue=1.5).to_dict()})
    )
    line = carbon_line(tmp_path, RunCases({GROUP: rows}, {}))
    # 18 J = 5e-6 kWh x 475 g/kWh x 1.5 = 3.56 mg
    assert line.startswith("CO2 of the measured windows: 3.56 mg at world average 475 g/kWh,")
    assert "assumed" in line and "PUE 1.5" in line and line.endswith("(from 18 J MODELLED)")
    (tmp_path / "environment.json").write_text(
        json.dumps({"carbon": carbon_settings("FRA").to_dict()})
    )
    assert "assumed" not in carbon_line(tmp_path, RunCases({GROUP: rows}, {}))


def test_two_wild_repetitions_keep_every_column_readable_at_80():
    from harness.rows.vs_dense import VsDense

    wild = [
        {**ROWS[0], "energy_j_per_sample_ci95_high": "0.0036"},
        {
            **ROWS[1],
            "case_id": "lenet5/int8-dynamic/inference/bs64/cpu",
            "variant": "int8-dynamic",
            "energy_j_per_sample_mean": "0.00144",
            "energy_j_per_sample_ci95_low": "0.0",
            "energy_j_per_sample_ci95_high": "49664483.9",
            "accuracy": "0.1611",
        },
    ]
    vs = {
        wild[1]["case_id"]: VsDense(
            case_id=wild[1]["case_id"],
            dense_case_id=wild[0]["case_id"],
            energy_ratio=2.99,
            ratio_ci95_low=0.0,
            ratio_ci95_high=2017757.1,
            accuracy_pp=-80.9,
            source="model",
            not_judged="only 2 rounds measured both undisturbed (at least 3 needed)",
        )
    }
    console = Console(width=80, record=True)
    console.print(group_table(GROUP, wild, vs))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "int8-dynamic" in text and "…" not in text  # nothing cut
    assert "1.44 mJ [0.00, 5e+10]" in text  # a wild bound in two digits, not eleven
    assert "+199 % [-100, >+999]" in text and "not judged" in text
    assert "+5.0" in text and "-15.1" in text  # the estimate error whole
