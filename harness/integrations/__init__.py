"""Stage 9, the user's own training: a tracker with phases, and callbacks for Hugging Face
`Trainer` and Lightning, writing the same run directory as a suite. See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "Tracker": "tracker",
    "TrackedPhase": "tracker",
    "track": "tracker",
    "Prediction": "prediction",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
