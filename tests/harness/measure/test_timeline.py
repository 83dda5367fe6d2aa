"""The power-timeline sampler over a fake powercap tree."""

from __future__ import annotations

import csv
import statistics
import time

import pytest
from conftest import FakeZone

from harness.errors import EnergyHarnessError
from harness.measure.timeline import TIMELINE_COLUMNS, PowerTimeline
from probes.base import ProbeOptions
from probes.rapl import RaplProbe


def test_sampled_power_matches_the_fake_power_and_writes_csv(fake_powercap, tmp_path):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 12.0)])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    with probe, PowerTimeline([probe], rate_hz=20) as timeline:
        time.sleep(0.6)
    points = timeline.points()
    assert len(points) >= 8
    assert statistics.median(p.power_w for p in points) == pytest.approx(12.0, rel=0.05)
    rows = timeline.write_csv(tmp_path / "power_timeline.csv")
    with (tmp_path / "power_timeline.csv").open() as handle:
        table = list(csv.reader(handle))
    assert table[0] == TIMELINE_COLUMNS and len(table) == rows + 1
    assert table[1][2:5] == ["rapl", "cpu:package-0", "counter"]


def test_memory_stays_bounded_by_decimation(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 12.0)])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    with probe, PowerTimeline([probe], rate_hz=200, max_points=8) as timeline:
        time.sleep(0.5)
    assert len(timeline.points()) < 8
    assert timeline.interval_s > 1 / 200
    elapsed = timeline.points()[-1].elapsed_s
    energy_j = sum(
        p.power_w * (p.elapsed_s - prev.elapsed_s)
        for prev, p in zip(timeline.points(), timeline.points()[1:], strict=False)
    )
    first = timeline.points()[0]
    energy_j += first.power_w * first.elapsed_s
    assert energy_j == pytest.approx(12.0 * elapsed, rel=0.05)


def test_bad_rate_is_rejected():
    with pytest.raises(EnergyHarnessError, match="rate"):
        PowerTimeline([], rate_hz=0)


def test_with_a_sink_points_reach_it_while_sampling_on_the_run_clock(fake_powercap):
    from datetime import datetime, timedelta, timezone

    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 12.0)])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    chunks: list[list] = []
    origin = datetime.now(timezone.utc) - timedelta(seconds=100)  # a run started earlier
    timeline = PowerTimeline([probe], rate_hz=20, sink=chunks.append, origin_utc=origin)
    timeline.flush_s = 0.1
    with probe, timeline:
        time.sleep(0.8)
        written_while_running = sum(len(c) for c in chunks)
    assert written_while_running >= 5  # on disk before the end: a kill loses one chunk
    assert len(timeline.points()) == 0  # nothing held back after the last flush
    points = [p for chunk in chunks for p in chunk]
    assert statistics.median(p.power_w for p in points) == pytest.approx(12.0, rel=0.05)
    assert all(100.0 <= p.elapsed_s < 110.0 for p in points)
    for p in points:  # elapsed_s and time_utc are the same clock
        since_origin = datetime.fromisoformat(p.time_utc) - origin
        assert since_origin.total_seconds() == pytest.approx(p.elapsed_s, abs=0.002)


def test_a_failing_sink_is_kept_and_sampling_goes_on(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 12.0)])
    probe = RaplProbe(ProbeOptions(powercap_root=tree.root))
    full = OSError(28, "No space left on device")

    def sink(points):
        raise full

    timeline = PowerTimeline([probe], rate_hz=20, sink=sink)
    timeline.flush_s = 0.05
    with probe, timeline:
        time.sleep(0.5)
    assert timeline.sink_error is full and timeline.sink is None
    assert len(timeline.points()) >= 3  # kept in memory after the sink failed
