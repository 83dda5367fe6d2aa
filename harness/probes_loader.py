"""`from harness.probes_loader import load_probes`, as documented before the stages layout.

Probe loading lives in `harness.measure.probes`; `from harness import load_probes` is shorter.
"""

from harness.measure.probes import ProbeStatus, load_probes, probe_statuses  # noqa: F401
