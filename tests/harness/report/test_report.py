"""write_report: a self-contained HTML report of a synthetic run directory."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from harness.commands.report import register
from harness.errors import EnergyHarnessError
from harness.report.page import write_report
from harness.report.plots import domain_means, plot_domains
from harness.report.views import build_cases, pareto_front
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows

EVIL = "<script>alert(1)</script>"
PNG_RE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')

# (model, variant, mode, accuracy, J/sample, source) -> cases #1..#7, all status ok
CASES = [
    ("lenet5", "dense", "inference", 0.990, 2.0e-3, "counter"),
    ("lenet5", "magnitude-90", "inference", 0.970, 1.9e-3, "counter"),  # dominated by #3
    ("lenet5", "int8", "inference", 0.985, 1.0e-3, "counter"),
    ("lenet5", "structured", "inference", 0.950, 0.8e-3, "counter"),
    ("lenet5", "dense", "training", 0.990, 6.0e-3, "counter"),
    ("lenet5", "magnitude-50", "training", 0.980, 7.0e-3, "counter"),  # dominated by #5
    ("lenet5", "int8", "training", 0.970, 5.0e-3, "model"),
]
SAMPLES = 64


def domain_rows(case_id: str, per_sample: float, source: str, rep: int) -> list[dict]:
    """In-total rows whose energies add up to per_sample x SAMPLES, plus a non-total row."""
    base = {"run_id": "run1", "case_id": case_id, "repetition": rep, "samples": SAMPLES}
    base |= {"in_total": True, "valid": True, "duration_s": 1.0}
    if source == "model":
        parts = [("model", "cpu:model", 0.8), ("model", "ram:model", 0.2)]
    else:
        parts = [("rapl", "cpu:package-0", 0.7), ("rapl", "cpu:dram-0", 0.3)]
    rows = [
        {**base, "probe": p, "domain": d, "source": source, "energy_j": per_sample * s * SAMPLES}
        for p, d, s in parts
    ]
    rows.append({**base, "probe": "rapl", "domain": "cpu:core-0", "in_total": False})
    rows[-1] |= {"source": "counter", "energy_j": 1e6}  # a child zone: never added
    return rows


def make_run(run_dir: Path, *, timeline: bool = True, environment: bool = True) -> Path:
    run_dir.mkdir(parents=True)
    measurements = CsvAppender(run_dir / "measurements.csv", MEASUREMENT_COLUMNS)
    cases = CsvAppender(run_dir / "cases.csv", CASE_COLUMNS)
    for i, (model, variant, mode, acc, per_sample, source) in enumerate(CASES, start=1):
        case_id = f"c{i}"
        meta = {"model": model, "variant": variant, "mode": mode, "batch_size": SAMPLES}
        for rep, factor in enumerate((0.99, 1.01)):
            for row in domain_rows(case_id, per_sample * factor, source, rep):
                measurements.append({**row, **meta, "device": "cpu"})
        row = {
            "run_id": "run1",
            "case_id": case_id,
            **meta,
            "device": "cpu",
            "status": "ok",
            "accuracy": acc,
            "sparsity": 0.5,
            "measured_source": source,
            "n": 2,
            "est_dense_hw_energy_j_per_sample": 1.5e-3,
            "est_sparse_ideal_energy_j_per_sample": 0.5e-3,
            "est_dense_hw_compute_j": 1.0e-3,
            "est_dense_hw_storage_j": 0.4e-3,
            "est_dense_hw_communication_j": 0.0,
            "est_dense_hw_static_j": 0.1e-3,
            "co2_g_per_1000_samples": per_sample * 1000 / 3.6e6 * 56,
            "carbon_intensity_g_per_kwh": 56.0,
            "pue": 1.0,
        }
        if i == 5:  # case #5 was measured beside other jobs
            row["stable"] = False
            row["unstable_reason"] = "other processes used up to 48 % of the CPUs <busy>"
        if i != 2:  # case #2: the mean comes from measurements.csv instead
            row["energy_j_per_sample_mean"] = per_sample
            row["energy_j_per_sample_ci95_low"] = per_sample * 0.9
            row["energy_j_per_sample_ci95_high"] = per_sample * 1.1
        cases.append(row)
    cases.append(
        {
            "run_id": "run1",
            "case_id": "c8",
            "model": EVIL,
            "variant": "dense",
            "mode": "inference",
            "status": "failed",
            "error": "RuntimeError: CUDA out of memory <b>boom</b>",
        }
    )
    measurements.close()
    cases.close()
    if timeline:
        t = CsvAppender(
            run_dir / "power_timeline.csv",
            ["time_utc", "elapsed_s", "probe", "domain", "source", "power_w"],
        )
        for k in range(20):
            t.append({"elapsed_s": k * 0.1, "probe": "rapl", "domain": "cpu:package-0"})
            t.append({"elapsed_s": k * 0.1, "probe": "model", "domain": "cpu:model"})
        t.close()
        rows = read_rows(run_dir / "power_timeline.csv")
        with (run_dir / "power_timeline.csv").open("w") as f:  # fill source and power
            f.write("time_utc,elapsed_s,probe,domain,source,power_w\n")
            for r in rows:
                source = "model" if r["probe"] == "model" else "counter"
                f.write(f",{r['elapsed_s']},{r['probe']},{r['domain']},{source},12.5\n")
    if environment:
        env = {
            "hostname": EVIL,
            "cpu": {"model": "Intel Xeon $x^2$ <i>"},
            "gpus": [],
            "probes": [
                {"name": "rapl", "available": True, "source": "counter", "reason": ""},
                {"name": "nvml", "available": False, "reason": "no NVIDIA driver <libnvidia>"},
            ],
            "carbon": {"country": "FRA", "intensity_g_per_kwh": 56.0, "pue": 1.0},
        }
        (run_dir / "environment.json").write_text(json.dumps(env))
    return run_dir


def pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in PNG_RE.findall(text)]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> tuple[Path, str]:
    """One full run and its report, shared: drawing five plots takes a few seconds."""
    run = make_run(tmp_path_factory.mktemp("report") / "run1")
    path = write_report(run)
    return path, path.read_text()


def test_full_report_embeds_five_plots_and_escapes_every_user_string(full_report):
    path, text = full_report
    assert path == path.parent / "report.html" and path.parent.name == "run1"
    images = pngs(text)
    assert len(images) == 5
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and len(img) > 1000 for img in images)
    assert "<script" not in text.lower()
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2  # case table + environment
    assert "<b>boom</b>" not in text and "&lt;b&gt;boom&lt;/b&gt;" in text
    assert "&lt;libnvidia&gt;" in text and "no NVIDIA driver" in text
    assert "could not be drawn" not in text
    # Case #2's mean and CI come from its two repetitions (1.9 mJ x 0.99 and x 1.01): on
    # their logs s^2 = 2e-4, so exp(log 1.9 mJ + 1e-4 +- 12.706 sqrt(1e-4 + 2e-8)), i.e.
    # 1.9 mJ x exp(+-0.1271): 1.67 .. 2.16 mJ (the Student-t interval was 1.9 +- 0.241)
    assert "1.9 mJ (1.67 mJ – 2.16 mJ)" in text
    assert "MODELLED" in text
    assert (
        "case #5 (c5) is unstable: other processes used up to 48 % of the CPUs &lt;busy&gt;" in text
    )
    assert "case #4 (c4) is unstable" not in text
    assert "http://" not in text.replace("http://www.w3.org", "")  # self-contained


def test_report_lists_the_hand_computed_pareto_fronts(full_report):
    _, text = full_report
    assert "Pareto front per mode: inference: #4, #3, #1; training: #7, #5" in text


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = [
        ("a", 1.0, 0.90),
        ("b", 2.0, 0.95),
        ("c", 2.0, 0.94),  # dominated by b (same energy, lower accuracy)
        ("d", 3.0, 0.95),  # dominated by b (more energy, same accuracy)
        ("e", 0.5, 0.80),
        ("f", 0.7, 0.70),  # dominated by e
        ("g", math.nan, 0.99),  # ignored
        ("h", 4.0, 0.99),
    ]
    assert pareto_front(points) == ["e", "a", "b", "h"]
    assert pareto_front([("x", 1.0, 0.5), ("y", 1.0, 0.5)]) == ["x", "y"]  # ties: both stay


def test_domain_bars_use_repetition_means_and_hatch_modelled_domains(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    run = make_run(tmp_path / "run1", timeline=False, environment=False)
    from harness.rows.repetitions import case_repetitions

    m_rows = read_rows(run / "measurements.csv")
    cases = build_cases(read_rows(run / "cases.csv"), m_rows, case_repetitions(m_rows))
    means = domain_means(cases[0].repetitions)
    assert means == {
        ("rapl", "cpu:package-0", "counter"): pytest.approx(0.7 * 2.0e-3),
        ("rapl", "cpu:dram-0", "counter"): pytest.approx(0.3 * 2.0e-3),
    }
    calls: list[dict] = []
    original = Axes.bar

    def spy(self, x, height, *args, **kwargs):
        calls.append({"height": list(height), **kwargs})
        return original(self, x, height, *args, **kwargs)

    monkeypatch.setattr(Axes, "bar", spy)
    assert plot_domains(cases) is not None
    hatched = [c for c in calls if c.get("hatch")]
    plain = [c for c in calls if not c.get("hatch")]
    assert len(hatched) == 2  # cpu:model and ram:model, both modelled
    # only case #7 (index 6 of the 7 finished cases) has modelled energy
    assert all(h > 0 for h in hatched[0]["height"][6:]) and not any(hatched[0]["height"][:6])
    assert all(c["height"][6] == 0 for c in plain)


def test_minimal_run_without_optional_files_still_reports(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    measurements = CsvAppender(run / "measurements.csv", MEASUREMENT_COLUMNS)
    measurements.append_many(domain_rows("only", 1e-3, "counter", 0))
    measurements.close()
    text = write_report(run).read_text()
    assert len(pngs(text)) == 1  # energy by domain; nothing else can be drawn
    assert "cases.csv is missing" in text
    assert "environment.json is missing" in text
    assert "No power_timeline.csv" in text
    assert "n=1, no CI" in text


def test_run_with_no_finished_case_gives_a_report_with_a_note(tmp_path):
    run = tmp_path / "failed"
    run.mkdir()
    CsvAppender(run / "measurements.csv", MEASUREMENT_COLUMNS).close()
    cases = CsvAppender(run / "cases.csv", CASE_COLUMNS)
    cases.append({"case_id": "x", "model": EVIL, "status": "failed", "error": "probe error"})
    cases.close()
    (run / "environment.json").write_text("{not json")
    text = write_report(run).read_text()
    assert pngs(text) == []
    assert "No case finished" in text
    assert "probe error" in text
    assert "environment.json could not be read" in text
    assert "<script" not in text.lower()


def test_missing_run_dir_or_measurements_raise_clear_errors(tmp_path):
    with pytest.raises(EnergyHarnessError, match="does not exist"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnergyHarnessError, match="measurements.csv is missing"):
        write_report(tmp_path / "empty")


def test_report_command_prints_the_path_last(tmp_path):
    app = typer.Typer()
    register(app)
    run = tmp_path / "run1"
    run.mkdir()
    CsvAppender(run / "measurements.csv", MEASUREMENT_COLUMNS).close()
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run / "report.html")
    assert (run / "report.html").exists()
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output


def test_the_table_footnote_and_scatter_say_one_thing(tmp_path):
    from harness.estimate.error import ESTIMATE_ERROR_DEFINITION
    from harness.report.page import render_report
    from harness.report.plots import estimate_points
    from harness.report.views import DENSE_HW_COLUMN
    from harness.rows.repetitions import load_run_repetitions

    run = make_run(tmp_path / "run")
    html = render_report(run)
    # cases.csv has no error here: computed by the one definition, (1.5 - 2.0) / 2.0 for
    # case #1 (estimate below the measurement), (1.5 - 1.0) / 1.0 for case #3 (above)
    assert ">-25.0 *<" in html and ">+50.0 *<" in html
    assert html.count("totals against totals") == 1  # the definition, stated once
    assert ESTIMATE_ERROR_DEFINITION[1:60] in html
    views = build_cases(
        read_rows(run / "cases.csv"),
        read_rows(run / "measurements.csv"),
        load_run_repetitions(run)[0],
    )
    points = estimate_points(views, DENSE_HW_COLUMN)
    assert len(points) == 7
    for view, estimated, measured in points:
        # the scatter's two figures are the table's: same sign, same size of the error
        assert view.estimate_error_pct == pytest.approx(100 * (estimated - measured) / measured)


def test_report_of_a_file_says_it_is_not_a_run_directory(tmp_path):
    app = typer.Typer()
    register(app)
    (tmp_path / "cases.csv").write_text("case_id\n")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "cases.csv")])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'cases.csv'} is not a run directory (a file)" in result.output


def test_a_read_only_or_full_run_dir_gives_one_line_and_no_temporary_file(tmp_path):
    from faults import read_only, small_disk

    app = typer.Typer()
    register(app)
    run = make_run(tmp_path / "run1")
    with read_only(run):
        result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: cannot write {run / 'report.html'}: " in result.output
    with small_disk(tmp_path / "disk", 64) as disk:  # the page (~100 KB of plots) cannot fit
        full = make_run(disk / "run1")
        result = CliRunner().invoke(app, ["report", str(full)])
        assert result.exit_code == 2
        assert f"cannot write {full / 'report.html'}: No space left on device" in result.output
        assert not [p.name for p in full.iterdir() if p.name.endswith(".tmp")]


def test_the_timeline_plots_real_time_across_resumed_sessions():
    from harness.report.plots import timeline_seconds

    def session(start: str, n: int) -> list[dict[str, str]]:  # elapsed_s restarting at 0
        return [
            {"time_utc": f"{start}:0{k}.000+00:00", "elapsed_s": str(k), "power_w": "10"}
            for k in range(n)
        ]

    rows = session("2026-01-01T10:00", 3) + session("2026-01-01T10:05", 3)
    assert timeline_seconds(rows) == [0, 1, 2, 300, 301, 302]
    assert timeline_seconds([{"time_utc": "", "elapsed_s": "1.5"}]) == [1.5]
