"""EnergyMeter windows, totals and idle baselines over fake hardware."""

from __future__ import annotations

import sys
import time
import types
import warnings

import pytest
from conftest import FakeZone

from harness.errors import EnergyHarnessError
from harness.measure.meter import EnergyMeter, select_total_domains
from probes.base import Domain, ProbeOptions
from probes.model import ModelProbe
from probes.pyrapl_probe import PyRaplProbe
from probes.rapl import RaplProbe


def rapl(tree) -> RaplProbe:
    return RaplProbe(ProbeOptions(powercap_root=tree.root))


def test_totals_never_double_count():
    domains = [
        ("rapl", Domain("cpu:psys", "counter", "platform")),
        ("rapl", Domain("cpu:package-0", "counter", "cpu", "cpu:psys")),
        ("rapl", Domain("cpu:core-0", "counter", "cpu", "cpu:package-0")),
        ("rapl", Domain("cpu:dram-0", "counter", "dram", "cpu:psys")),
        ("model", Domain("cpu:model", "model", "cpu")),
        ("model", Domain("ram:model", "model", "dram")),
        ("pyrapl", Domain("pyrapl:package-0", "peer", "cpu")),
        ("nvml", Domain("gpu:0", "counter", "gpu:0")),
    ]
    assert select_total_domains(domains) == {("rapl", "cpu:psys"), ("nvml", "gpu:0")}
    amd = [d for d in domains if d[1].scope != "platform" and d[0] != "nvml"]
    amd = [
        (p, Domain(d.name, d.source, d.scope)) if d.name == "cpu:package-0" else (p, d)
        for p, d in amd
        if d.name != "cpu:dram-0"
    ]
    # no dram counter: the modelled RAM fills that scope, counters keep the CPU
    assert select_total_domains(amd) == {("rapl", "cpu:package-0"), ("model", "ram:model")}


def test_nested_and_overlapping_windows(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 40.0)])
    with EnergyMeter([rapl(tree)]) as meter:
        meter.begin_window("outer")
        time.sleep(0.4)
        meter.begin_window("inner")
        time.sleep(0.4)
        outer = meter.end_window("outer")
        time.sleep(0.4)
        inner = meter.end_window("inner")
    for m in (outer, inner):
        assert m.total_energy_j == pytest.approx(40 * m.duration_s, rel=0.02)
        assert m.duration_s == pytest.approx(0.8, abs=0.1)
    assert [m.name for m in meter.measurements] == ["outer", "inner"]


def test_window_misuse_is_a_clear_error(fake_powercap):
    meter = EnergyMeter([rapl(fake_powercap())])
    meter.begin_window("a")
    with pytest.raises(EnergyHarnessError, match="already open"):
        meter.begin_window("a")
    with pytest.raises(EnergyHarnessError, match="never begun"):
        meter.end_window("b")
    meter.close()


@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")  # on purpose
def test_window_ends_when_the_block_raises_and_decorator_records(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 10.0)])
    meter = EnergyMeter([rapl(tree)])

    @meter.measured()
    def work(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    assert work(0.2) == "done"
    with pytest.raises(RuntimeError):
        with meter.window("boom"):
            raise RuntimeError("the workload failed")
    meter.close()
    names = [m.name for m in meter.measurements]
    assert names[0].endswith("work") and names[1] == "boom"
    assert meter.measurements[0].total_energy_j == pytest.approx(2.0, rel=0.1)


def test_idle_baseline_gives_dynamic_energy(fake_powercap):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 5.0)])
    with EnergyMeter([rapl(tree)]) as meter:
        idle = meter.measure_idle(0.6)
        assert idle["cpu:package-0"] == pytest.approx(5.0, rel=0.03)
        tree.set_power("intel-rapl:0", 25.0)
        with meter.window("load") as w:
            time.sleep(0.8)
    m = w.measurement
    assert m.domains[0].idle_power_w == pytest.approx(5.0, rel=0.03)
    assert m.dynamic_energy_j == pytest.approx(20 * m.duration_s, rel=0.03)
    assert meter.measurements == [m]  # the baseline window is not a result


def test_counter_beats_model_and_model_fills_the_gap(fake_powercap):
    amd = fake_powercap([FakeZone("intel-rapl:0", "package-0", 30.0)])
    with EnergyMeter([rapl(amd), ModelProbe()]) as meter:
        with meter.window("w") as w:
            time.sleep(0.3)
    m = w.measurement
    in_total = {d.domain for d in m.domains if d.in_total}
    assert in_total == {"cpu:package-0", "ram:model"}
    assert m.total_source == "counter+model"
    assert m.measured_energy_j == pytest.approx(30 * m.duration_s, rel=0.05)
    assert m.total_energy_j == pytest.approx(m.measured_energy_j + m.modelled_energy_j)


def test_pyrapl_peer_is_reported_but_never_totalled(fake_powercap, monkeypatch):
    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 10.0)])
    counter = tree.zones[0].path / "energy_uj"

    class Sensor:  # pyRAPL's Sensor.energy(): (pkg, dram) per socket in uJ, -1 if absent
        def energy(self):
            return [int(counter.read_text()), -1]

    monkeypatch.setitem(sys.modules, "pyRAPL", types.SimpleNamespace(Sensor=Sensor))
    peer = PyRaplProbe()
    assert peer.unavailable_reason() is None
    with EnergyMeter([rapl(tree), peer]) as meter:
        with meter.window("w") as w:
            time.sleep(0.3)
    m = w.measurement
    peer_row = next(d for d in m.domains if d.probe == "pyrapl")
    assert peer_row.source == "peer" and not peer_row.in_total
    assert peer_row.energy_j == pytest.approx(m.energy_of("cpu:package-0"), rel=0.05)
    assert m.total_energy_j == pytest.approx(m.energy_of("cpu:package-0"))


@pytest.mark.filterwarnings("ignore::harness.measure.meter.ShortWindowWarning")  # on purpose
def test_pyrapl_wrap_makes_the_window_invalid_not_negative(monkeypatch):
    values = iter([5_000_000, 5_000_000, 1_000_000])  # probe check, begin, end

    class Sensor:
        def energy(self):
            return [next(values), -1]

    monkeypatch.setitem(sys.modules, "pyRAPL", types.SimpleNamespace(Sensor=Sensor))
    meter = EnergyMeter([PyRaplProbe()])
    meter.begin_window("w")
    d = meter.end_window("w").domains[0]
    assert d.energy_j is None and "decreased" in d.invalid_reason


def test_a_short_window_warns_through_warnings_and_keeps_the_note(fake_powercap):
    from harness.measure.meter import ShortWindowWarning

    tree = fake_powercap([FakeZone("intel-rapl:0", "package-0", 10.0)])
    with EnergyMeter([rapl(tree)]) as meter:
        period_s = meter.min_window_s
        with pytest.warns(ShortWindowWarning, match="shorter than the counters' update period"):
            meter.begin_window("blink")
            m = meter.end_window("blink")  # no sleep: far below the period
        assert m.duration_s < period_s and m.warnings and "blink" in m.warnings[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ShortWindowWarning)  # a user's filter applies
            meter.begin_window("long")
            time.sleep(period_s * 1.5)
            assert not meter.end_window("long").warnings
            meter.begin_window("blink again")
            with pytest.raises(ShortWindowWarning):
                meter.end_window("blink again")


def test_the_cli_says_our_warnings_in_one_line_and_leaves_library_notes_out(monkeypatch):
    from harness.commands.common import cli_warnings
    from harness.errors import HarnessWarning

    monkeypatch.setattr(sys, "warnoptions", [])
    said: list[str] = []
    with cli_warnings(said.append):
        warnings.warn(HarnessWarning("window 'x' lasted 1.0 ms"), stacklevel=1)
        warnings.warn_explicit(
            "TypedStorage is deprecated", UserWarning, "torch/storage.py", 1, module="torch.storage"
        )
        warnings.warn_explicit(
            "pruning API changes", FutureWarning, "tp/x.py", 1, module="torch_pruning.pruner"
        )
        warnings.warn_explicit("a user's own warning", UserWarning, "train.py", 7, module="train")
    assert said == [
        "warning: window 'x' lasted 1.0 ms",
        "warning: a user's own warning (train.py:7)",
    ]
