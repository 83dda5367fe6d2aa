"""Stage 3, what runs inside a window: batches, inference and training steps, windows
long enough for the counters. See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "make_batch": "batches",
    "inference_step": "steps",
    "training_step": "steps",
    "run_iterations": "steps",
    "calibrate_iterations": "windows",
    "measure_workload": "windows",
    "WorkloadRun": "windows",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
