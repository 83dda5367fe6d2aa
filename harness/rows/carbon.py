"""Energy to CO2: grams CO2eq = kWh x carbon intensity (g/kWh) x PUE.

Carbon intensity comes from codecarbon's bundled data files (read directly, no network
and no codecarbon import): countries by ISO-3 code (`global_energy_mix.json`, Our World
in Data), US states (EPA eGRID, lbs/MWh), Canadian provinces (energy mix x per-source
intensities), Nordic bidding zones and Chinese provinces. `--carbon-intensity`
overrides all of it. With nothing given, the world average of codecarbon's
per-source table is used and recorded as such.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import EnergyHarnessError
from harness.measure.co2 import J_PER_KWH, co2_g

__all__ = ["J_PER_KWH", "CarbonSettings", "carbon_settings"]
WORLD_AVERAGE = "world average"  # how a source that was assumed begins
G_PER_LB = 453.59237
# codecarbon's Canadian energy-mix keys -> its per-source intensity keys
_CANADA_SOURCES = {
    "naturalGas": "natural_gas",
    "petroleum": "petroleum",
    "coal": "coal",
    "biomass": "biomass",
    "nuclear": "nuclear",
    "hydro": "hydroelectricity",
    "wind": "wind",
    "solar": "solar",
    "tidal": "hydroelectricity",
    "other": "world_average",
}


@dataclass(frozen=True)
class CarbonSettings:
    """The intensity used for a run, with where it came from (recorded in environment.json)."""

    intensity_g_per_kwh: float
    source: str
    year: int | None
    country: str | None = None
    region: str | None = None
    pue: float = 1.0

    def co2_g(self, energy_j: float) -> float:
        """Grams CO2eq for `energy_j` joules at the facility (x PUE)."""
        return co2_g(energy_j, self.intensity_g_per_kwh, self.pue)

    @property
    def assumed(self) -> bool:
        """True when no country, region or intensity was given: the world average."""
        return self.source.startswith(WORLD_AVERAGE)

    def describe(self) -> str:
        """`world average 475 g/kWh, assumed (set --country ...), PUE 1.0` or
        `FRA 56 g/kWh (codecarbon ...), PUE 1.1`: the intensity, where it came from, PUE."""
        value = f"{self.intensity_g_per_kwh:.0f} g/kWh"
        if self.assumed:
            where = (
                f"world average {value}, assumed (set --country, --region or --carbon-intensity)"
            )
        else:
            place = "/".join(p for p in (self.country, self.region) if p)
            where = f"{place + ' ' if place else ''}{value} ({self.source})"
        return f"{where}, PUE {self.pue:g}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _data_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise EnergyHarnessError(
            "codecarbon is not installed, so no bundled carbon data: pip install codecarbon, "
            "or give --carbon-intensity G_PER_KWH"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "private_infra"


@cache
def _load(name: str) -> dict[str, Any]:
    path = _data_dir() / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnergyHarnessError(
            f"codecarbon's data file {path} is missing ({exc}); reinstall codecarbon or give "
            "--carbon-intensity G_PER_KWH"
        ) from exc


def _country(iso3: str) -> tuple[float, str, int | None]:
    mix = _load("global_energy_mix.json")
    entry = mix.get(iso3.upper())
    if entry is None or entry.get("carbon_intensity") is None:
        raise EnergyHarnessError(
            f"unknown country code {iso3!r}: give an ISO-3 code such as FRA, USA, DEU, CHN "
            "(codecarbon's global_energy_mix.json lists them), or --carbon-intensity G_PER_KWH"
        )
    source = f"codecarbon global_energy_mix.json ({entry.get('country_name', iso3)}, OWID)"
    return float(entry["carbon_intensity"]), source, entry.get("year")


def _region(iso3: str, region: str) -> tuple[float, str, int | None]:
    key = region.strip().lower()
    iso3 = iso3.upper()
    if iso3 == "USA":
        data = _load("2023/usa_emissions.json")
        for name, entry in data.items():
            if name.startswith("_"):
                continue
            if key in (name, str(entry.get("regionCode", "")).lower()):
                meta = data.get("_source", {})
                value = float(entry["emissions"]) * G_PER_LB / 1000.0  # lbs/MWh -> g/kWh
                return value, f"codecarbon usa_emissions.json ({name}; {meta.get('name')})", 2023
    elif iso3 == "CAN":
        data = _load("2023/canada_energy_mix.json")
        if key in data:
            per_source = _load("carbon_intensity_per_source.json")
            mix = data[key]
            total = sum(v for k, v in mix.items() if k != "total")
            value = sum(
                mix[k] / total * per_source[_CANADA_SOURCES[k]] for k in mix if k in _CANADA_SOURCES
            )
            return value, f"codecarbon canada_energy_mix.json ({key}) x per-source intensity", 2023
    else:
        for file in ("nordic_emissions.json", "2023/china_provincial_emissions.json"):
            for code, entry in _load(file)["data"].items():
                names = [code.lower(), *entry.get("names", [])]
                if key in names:
                    source = f"codecarbon {Path(file).name} ({code}: {entry.get('description')})"
                    return float(entry["emission_factor"]), source, entry.get("year")
    raise EnergyHarnessError(
        f"unknown region {region!r} for country {iso3}: codecarbon ships regions for USA "
        "(state names or codes), CAN (province names), Nordic zones (SE1..SE4, NO1..NO5, "
        "FI) and Chinese provinces (CN-BJ or 'beijing'); drop --region or give "
        "--carbon-intensity G_PER_KWH"
    )


def carbon_settings(
    country: str | None = None,
    region: str | None = None,
    intensity_g_per_kwh: float | None = None,
    pue: float = 1.0,
) -> CarbonSettings:
    """Resolve the carbon intensity: override, else region, else country, else world average."""
    if not (math.isfinite(pue) and pue >= 1.0):
        raise EnergyHarnessError(
            f"--pue must be >= 1.0 (facility / IT energy) and finite, got {pue}"
        )
    if intensity_g_per_kwh is not None:
        if not (math.isfinite(intensity_g_per_kwh) and intensity_g_per_kwh >= 0):
            raise EnergyHarnessError(
                f"--carbon-intensity must be >= 0 g/kWh and finite, got {intensity_g_per_kwh}"
            )
        return CarbonSettings(
            intensity_g_per_kwh, "user override (--carbon-intensity)", None, country, region, pue
        )
    if region is not None:
        if country is None:
            raise EnergyHarnessError("--region needs --country (ISO-3), e.g. --country USA")
        value, source, year = _region(country, region)
        return CarbonSettings(value, source, year, country.upper(), region, pue)
    if country is not None:
        value, source, year = _country(country)
        return CarbonSettings(value, source, year, country.upper(), None, pue)
    per_source = _load("carbon_intensity_per_source.json")
    return CarbonSettings(
        float(per_source["world_average"]),
        f"{WORLD_AVERAGE}, codecarbon carbon_intensity_per_source.json "
        f"({per_source.get('world_average_source', 'IEA')}); set --country for your grid",
        2019,
        None,
        None,
        pue,
    )
