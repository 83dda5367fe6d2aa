"""write_report: a self-contained HTML report of a synthetic run directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from report_runs import EVIL, domain_rows, make_run, pngs
from typer.testing import CliRunner

from harness.commands.report import register
from harness.errors import EnergyHarnessError
from harness.report.page import write_report
from harness.report.plots import domain_means, plot_domains
from harness.report.views import build_cases
from harness.rows.columns import CASE_COLUMNS, MEASUREMENT_COLUMNS
from harness.rows.csvfile import CsvAppender, read_rows


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
    # Case c2's mean and CI come from its two repetitions (1.9 mJ x 0.99 and x 1.01): on
    # their logs s^2 = 2e-4, so exp(log 1.9 mJ + 1e-4 +- 12.706 sqrt(1e-4 + 2e-8)), i.e.
    # 1.9 mJ x exp(+-0.1271): 1.67 .. 2.16 mJ (the Student-t interval was 1.9 +- 0.241)
    assert "1.90 mJ [1.67, 2.16]" in text
    assert "MODELLED" in text
    assert "c5 is unstable: other processes used up to 48 % of the CPUs &lt;busy&gt;" in text
    assert "c4 is unstable" not in text
    assert "http://" not in text.replace("http://www.w3.org", "")  # self-contained


def test_report_lists_the_noise_aware_fronts_by_variant_name(full_report):
    _, text = full_report
    # Every case's two repetitions are its mean x 0.99 and x 1.01: a 95 % interval of
    # mean x exp(+-0.127). Inference: magnitude-90 (1.67 .. 2.16 mJ, 97.0 %) is dominated
    # by int8 (up to 1.13 mJ, 98.5 %). Training: dense (6.0 mJ, 99 %) reaches up to
    # 6.81 mJ and magnitude-50 (7.0 mJ, 98 %) down to 6.16 mJ: within noise, both stay.
    assert "inference: lenet5 on digits, batch 64, cpu, fp32: structured, int8, dense;" in text
    assert "training: lenet5 on digits, batch 64, cpu, fp32: int8, dense, magnitude-50." in text
    body = text.split("</style>")[1]
    assert not re.search(r"(?<!&)#\d", body)  # names, never numbers to look up


def test_domain_bars_use_repetition_means_and_hatch_modelled_domains(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    run = make_run(tmp_path / "run1", timeline=False, environment=False)
    from harness.rows.repetitions import case_repetitions

    m_rows = read_rows(run / "measurements.csv")
    cases = build_cases(read_rows(run / "cases.csv"), case_repetitions(m_rows))
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
    assert ">-25.0 % *<" in html and ">+50.0 % *<" in html
    assert html.count("totals against totals") == 1  # the definition, stated once
    assert ESTIMATE_ERROR_DEFINITION[1:60] in html
    views = build_cases(read_rows(run / "cases.csv"), load_run_repetitions(run)[0])
    points = estimate_points(views, DENSE_HW_COLUMN)
    assert len(points) == 7
    for view, estimated, measured in points:
        # the scatter's two figures are the table's: same sign, same size of the error
        assert view.estimate_error_pct == pytest.approx(100 * (estimated - measured) / measured)


def test_each_case_shows_measured_estimated_and_simulated_side_by_side(tmp_path):
    from harness.report.page import render_report

    html = render_report(make_run(tmp_path / "run", simulated=True))
    assert "SIMULATED per sample<br><small>on edge-systolic-64</small>" in html
    rows = re.findall(r'<tr>\s*<td class="variant">[^<]+</td>.*?</tr>', html, re.S)
    # dense inference (the first table's first row): measured 2.00 mJ, ESTIMATED 1.5 mJ,
    # SIMULATED a quarter of the measurement; its distance from the estimate by the one
    # definition; training is not simulated
    dense, dense_training = rows[0], rows[5]
    assert "vs estimate" not in dense_training and dense_training.count("<td") == 9
    cells = [dense.index(x) for x in ("2.00 mJ [1.80, 2.20]", "1.5 mJ", "500 µJ<br>")]
    assert cells == sorted(cells)  # measured, then estimated, then simulated
    assert f"vs estimate {(0.5 - 1.5) / 1.5 * 100:+.1f} %" in dense
    # the headline says the same: SIMULATED a quarter of the measured energy (-75 %)
    assert "the SIMULATED energy on edge-systolic-64" in html
    assert "-75 % (median of 3 case(s), -75 % to -75 %) against the measured" in html


def test_the_headline_gives_the_estimate_errors_the_table_shows(tmp_path):
    from harness.report.page import render_report

    html = render_report(make_run(tmp_path / "run"))  # cases.csv has no estimate_error_pct
    # the table computes them (marked *): -25 %, -21.1 %, +50 %, +87.5 % (inference),
    # -75 %, -78.6 %, -70 % (training): median -25 %, from -78.6 % to +87.5 %
    assert ">-25.0 % *<" in html and ">+87.5 % *<" in html
    assert "typical error -25 % (median of 7 case(s), -79 % to +88 %)" in html


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
    from harness.report.timeline import timeline_seconds

    def session(start: str, n: int) -> list[dict[str, str]]:  # elapsed_s restarting at 0
        return [
            {"time_utc": f"{start}:0{k}.000+00:00", "elapsed_s": str(k), "power_w": "10"}
            for k in range(n)
        ]

    rows = session("2026-01-01T10:00", 3) + session("2026-01-01T10:05", 3)
    assert timeline_seconds(rows) == [0, 1, 2, 300, 301, 302]
    assert timeline_seconds([{"time_utc": "", "elapsed_s": "1.5"}]) == [1.5]
