"""`from harness.meter import EnergyMeter`, as documented before the stages layout.

The meter lives in `harness.measure.meter`; `from harness import EnergyMeter` is shorter.
"""

from harness.measure.meter import DomainEnergy, EnergyMeter, Measurement  # noqa: F401
