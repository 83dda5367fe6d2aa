"""Energy to CO2, the one formula: grams CO2eq = kWh x carbon intensity (g/kWh) x PUE.

Where an intensity comes from (a country, a region, the world average) is decided in
`harness.rows.carbon`; this module only converts, so a bare `Measurement` can say its CO2.
"""

from __future__ import annotations

J_PER_KWH = 3.6e6


def co2_g(energy_j: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams CO2eq of `energy_j` joules at `intensity_g_per_kwh`, at the facility (x PUE)."""
    return energy_j / J_PER_KWH * intensity_g_per_kwh * pue
