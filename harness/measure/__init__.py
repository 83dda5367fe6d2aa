"""Stage 2, reading energy: the meter over probes, probe loading, the power timeline, the
environment record and what a figure's source is called. See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "DomainEnergy": "meter",
    "EnergyMeter": "meter",
    "Measurement": "meter",
    "load_probes": "probes",
    "probe_statuses": "probes",
    "PowerTimeline": "timeline",
    "environment_record": "environment",
    "sync_cuda": "clock",
    "utc_now_iso": "clock",
    "combine_sources": "sources",
    "source_label": "sources",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
