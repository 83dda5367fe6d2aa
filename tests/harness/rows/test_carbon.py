"""Carbon intensity from codecarbon's bundled data, and grams of CO2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import EnergyHarnessError
from harness.rows.carbon import J_PER_KWH, _data_dir, carbon_settings


def test_country_intensity_is_codecarbons_figure_and_co2_follows():
    mix = json.loads((_data_dir() / "global_energy_mix.json").read_text())
    settings = carbon_settings(country="fra", pue=1.5)
    assert settings.intensity_g_per_kwh == mix["FRA"]["carbon_intensity"]
    assert settings.year == mix["FRA"]["year"] and "France" in settings.source
    # 1 kWh at the IT load, x PUE 1.5
    assert settings.co2_g(J_PER_KWH) == pytest.approx(mix["FRA"]["carbon_intensity"] * 1.5)


def test_us_state_converts_lbs_per_mwh_to_g_per_kwh():
    data = json.loads((_data_dir() / "2023/usa_emissions.json").read_text())
    settings = carbon_settings(country="USA", region="TX")
    assert settings.intensity_g_per_kwh == pytest.approx(data["texas"]["emissions"] * 0.45359237)
    assert carbon_settings(country="USA", region="texas").intensity_g_per_kwh == (
        settings.intensity_g_per_kwh
    )


def test_override_and_default_are_labelled():
    assert carbon_settings(intensity_g_per_kwh=100.0).source.startswith("user override")
    default = carbon_settings()
    assert default.intensity_g_per_kwh == 475 and "world average" in default.source


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"country": "XYZ"}, "unknown country code 'XYZ'"),
        ({"country": "USA", "region": "atlantis"}, "unknown region 'atlantis'"),
        ({"region": "texas"}, "--region needs --country"),
        ({"pue": 0.8}, "--pue must be >= 1.0"),
        ({"pue": float("nan")}, "and finite, got nan"),
        ({"intensity_g_per_kwh": float("inf")}, "--carbon-intensity must be >= 0 g/kWh and finite"),
    ],
)
def test_bad_carbon_settings_say_what_to_fix(kwargs, message):
    with pytest.raises(EnergyHarnessError, match=message.replace("(", r"\(")):
        carbon_settings(**kwargs)


def test_data_dir_is_codecarbons_package_data():
    assert Path(_data_dir(), "global_energy_mix.json").is_file()
