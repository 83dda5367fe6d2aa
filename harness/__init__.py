"""energy-harness: measure what ML models cost in joules and CO2, and hold it against estimates.

The package is a pipeline of stages, each a subpackage that imports only earlier ones:

    spec -> measure -> workloads -> prepare -> estimate -> rows -> run -> report
    -> integrations -> commands

The names below are the public Python API; each loads its stage on first use, so
`import harness` stays cheap (no torch).

    from harness import EnergyMeter, load_probes
    with EnergyMeter(load_probes(None)) as meter:
        with meter.window("step") as w:
            ...
"""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "EnergyHarnessError": "errors",
    "EnergyMeter": "measure.meter",
    "Measurement": "measure.meter",
    "load_probes": "measure.probes",
    "probe_statuses": "measure.probes",
    "PowerTimeline": "measure.timeline",
    "phase": "measure.phases",
    "track": "integrations.tracker",
    "Tracker": "integrations.tracker",
    "load_suite": "spec.suite",
    "parse_suite": "spec.suite",
    "prepare_model": "prepare.pipeline",
    "estimate_model": "estimate.model",
    "RunOptions": "run.options",
    "run_suite": "run.runner",
    "write_report": "report.page",
    "compare_runs": "report.compare",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
