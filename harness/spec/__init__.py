"""Stage 1, what to run: suite files into typed settings and cases, variants, the catalog.

No torch here except where a model or dataset is built. See README.md.
"""

from __future__ import annotations

from harness.lazy import lazy_exports

_WHERE = {
    "Case": "case",
    "CarbonSpec": "settings",
    "SuiteSettings": "settings",
    "Suite": "suite",
    "load_suite": "suite",
    "parse_suite": "suite",
    "TrainConfig": "train_config",
    "VARIANTS": "variants",
    "VariantUnsupported": "variants",
    "resolve_variant": "variants",
    "DatasetSplits": "catalog",
    "ModelSpec": "catalog",
    "build_model": "catalog",
    "example_input": "catalog",
    "load_dataset": "catalog",
    "model_spec": "catalog",
}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
