"""Probe discovery through entry points, including a third party's probe."""

from __future__ import annotations

import time
from importlib.metadata import EntryPoint

import pytest

import harness.measure.probes as loader
from harness.errors import EnergyHarnessError
from probes.base import SOURCE_COUNTER, Domain, Probe, Reading


class ThirdPartyProbe(Probe):
    """A probe a third party would ship in its own package."""

    name = "wallplug"
    source = SOURCE_COUNTER

    def unavailable_reason(self):
        return None

    def domains(self):
        return [Domain("node:wall", SOURCE_COUNTER, "platform")]

    def read(self):
        return Reading(time.monotonic(), {"node:wall": 100.0 * time.monotonic()})


def test_builtin_probes_are_registered_as_entry_points():
    names = set(loader.discover())
    assert {"rapl", "nvml", "model", "pyrapl"} <= names


def test_a_third_party_probe_is_found_by_installing_an_entry_point(monkeypatch):
    real = loader.entry_points

    def with_plugin(group):
        extra = EntryPoint("wallplug", f"{__name__}:ThirdPartyProbe", loader.GROUP)
        return [*real(group=group), extra]

    monkeypatch.setattr(loader, "entry_points", with_plugin)
    (probe,) = loader.load_probes(["wallplug"])
    assert isinstance(probe, ThirdPartyProbe)
    statuses = {s.name: s for s in loader.probe_statuses()}
    assert statuses["wallplug"].available and statuses["wallplug"].domains == ("node:wall",)


def test_unknown_probe_lists_the_known_ones():
    with pytest.raises(EnergyHarnessError) as info:
        loader.load_probes(["rapl2"])
    assert "'rapl2'" in str(info.value) and "rapl, " in str(info.value)


def test_default_set_skips_unavailable_and_opt_in_probes(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGY_HARNESS_POWERCAP_ROOT", str(tmp_path / "none"))
    names = [p.name for p in loader.load_probes(None)]
    assert "model" in names and "pyrapl" not in names and "rapl" not in names
    with pytest.raises(EnergyHarnessError, match="rapl.*unavailable.*none"):
        loader.load_probes(["rapl"])
