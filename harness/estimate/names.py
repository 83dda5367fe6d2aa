"""Names and defaults of the estimate, importable without torch (the CLI reads them at start)."""

from __future__ import annotations

DENSE_HW = "dense-hw"
SPARSE_IDEAL = "sparse-ideal"
NONZERO_PARAMS = "nonzero-params"
ACCOUNTINGS = (DENSE_HW, SPARSE_IDEAL, NONZERO_PARAMS)

MODES = ("inference", "training")
# Memory traffic of one optimizer update, in multiples of the parameter bytes.
OPTIMIZER_TRAFFIC = {"sgd": 3, "sgd-momentum": 5, "adam": 7}

ESTIMATE_LABEL = "estimate (modelled from operation counts and a profile; not a measurement)"
DEFAULT_PROFILE = "horowitz-45nm"

FLOP_CONVENTION = (
    "1 multiply-add = 2 FLOPs (torch's FlopCounterMode); torchvision and many papers list "
    "MACs (multiply-adds), so their 'GFLOPS' are half these FLOPs"
)
DEFAULT_SEED = 0  # the random initialisation an estimate's untrained model is built with
