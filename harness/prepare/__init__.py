"""Stage 4, the model a case measures: train, rank, prune, fine-tune, evaluate, cached.
See README.md."""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "PreparedModel": "pipeline",
    "prepare_model": "pipeline",
    "compress_model": "compress",
    "ModelCache": "cache",
    "train": "training",
    "evaluate": "training",
    "sparsity_report": "sparsity",
    "untrained_variant": "untrained",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
