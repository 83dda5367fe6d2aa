"""The bundled suites, registered in the `energy_harness.suites` entry-point group."""

from importlib.resources import files

DEFAULT = files(__name__) / "default.toml"
GPU = files(__name__) / "gpu.toml"
SIMULATE = files(__name__) / "simulate.toml"
