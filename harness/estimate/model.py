"""The estimate of a prepared model: counts, then joules, per accounting and per sample.

This is what the suite runner calls for each case:

    est = estimate_model(model, example_input, "h100-class", mode="inference",
                         duration_s=measured_step_s, host_to_device=on_gpu)
    est.to_dict()      # the JSON object of `energy-harness estimate --json`
    est.case_columns() # count and estimate columns for cases.csv (per step)

Every figure it returns is an estimate (a model), labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.estimate.accounting import (
    ACCOUNTING_NOTES,
    DENSE_HW,
    NONZERO_PARAMS,
    SPARSE_IDEAL,
)
from harness.estimate.counting import Counts, StepCounts, count_step
from harness.estimate.energy import EnergyEstimate, estimate_energy
from harness.estimate.names import (  # noqa: F401 (DEFAULT_PROFILE re-exported)
    DEFAULT_PROFILE,
    ESTIMATE_LABEL,
    FLOP_CONVENTION,
)
from harness.estimate.precision import PRECISION_NOTES
from harness.estimate.profiles import Profile, StaticPower, load_profile
from harness.spec.precision import FP32


@dataclass(frozen=True)
class ModelEstimate:
    """Counts and estimated joules of one step, for `dense-hw` and `sparse-ideal`."""

    counts: StepCounts
    profile: Profile
    energy: dict[str, EnergyEstimate]  # accounting -> estimate of one step

    @property
    def batch_size(self) -> int:
        """Samples per step."""
        return self.counts.batch_size

    @property
    def num_classes(self) -> int | None:
        """Outputs per sample of a classifier (output of shape [batch, classes]), else None."""
        shape = self.counts.output_shape
        return shape[0] if len(shape) == 1 else None

    @property
    def notes(self) -> list[str]:
        """Notes of the counts and of the dense-hw estimate (pricing, power cap)."""
        return [*self.counts.notes, *self.energy[DENSE_HW].notes]

    def per_sample(self, accounting: str = DENSE_HW) -> EnergyEstimate:
        """The estimate of one sample (the step's estimate / batch size)."""
        return self.energy[accounting].scaled(1.0 / self.batch_size)

    def counts_per_sample(self, accounting: str = DENSE_HW) -> Counts:
        """The counts of one sample."""
        return self.counts.accounting(accounting).scaled(1.0 / self.batch_size)

    def _figures(self, accounting: str) -> dict[str, object]:
        counts = self.counts_per_sample(accounting)
        energy = self.per_sample(accounting)
        return {
            "flops_per_sample": counts.flops,
            "bytes_per_sample": counts.bytes,
            "comm_bytes_per_sample": counts.comm_bytes_total,
            "energy_j_per_sample": energy.energy_j,
            "breakdown_j": energy.breakdown_j,
            "note": ACCOUNTING_NOTES[accounting],
        }

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: top-level figures are `dense-hw` per sample; all labelled estimates."""
        dense = self._figures(DENSE_HW)
        counts = self.counts_per_sample(DENSE_HW)
        step = self.energy[DENSE_HW]
        return {
            "kind": "estimate",
            "label": ESTIMATE_LABEL,
            "profile": self.profile.name,
            "profile_target": self.profile.target,
            "memory_level": step.memory_level,
            "mode": self.counts.mode,
            "precision": self.counts.precision,
            "precision_note": PRECISION_NOTES[self.counts.precision],
            "input_shape": list(self.counts.input_shape),
            "output_shape": list(self.counts.output_shape),
            "num_classes": self.num_classes,
            "flop_convention": FLOP_CONVENTION,
            "batch_size": self.batch_size,
            "world_size": self.counts.world_size,
            "optimizer": self.counts.optimizer,
            "host_to_device": self.counts.host_to_device,
            "accounting": DENSE_HW,
            **{k: v for k, v in dense.items() if k != "note"},
            "duration_s_per_step": step.duration_s,
            "duration_source": step.duration_source,
            "static_power_w": None if step.static is None else step.static.joules_per_unit,
            "static_source": None if step.static is None else step.static.source,
            "implied_power_w": step.implied_power_w,
            "power_cap": None if step.power_cap is None else step.power_cap.to_dict(),
            "flops_by_dtype_per_sample": dict(counts.flops_by_dtype),
            "flops_by_op_per_sample": dict(counts.flops_by_op),
            "memory_bytes_per_sample": dict(counts.memory_bytes),
            "comm_bytes_per_sample_by_channel": dict(counts.comm_bytes),
            "params": self.counts.params,
            "nonzero_params": self.counts.nonzero.nonzero_params,
            "density": self.counts.density,
            "terms_per_sample": [t.to_dict() for t in self.per_sample(DENSE_HW).terms],
            "accountings": {
                DENSE_HW: dense,
                SPARSE_IDEAL: self._figures(SPARSE_IDEAL),
                NONZERO_PARAMS: self.counts.nonzero.to_dict(),
            },
            "counted_on": self.counts.counted_on,
            "notes": self.notes,
        }

    def case_columns(self, steps: int = 1) -> dict[str, float]:
        """Columns for a suite's cases.csv: counts and estimates of `steps` steps.

        These are the inputs `harness.estimate.calibrate.fit_cases` reads (see there):
        `flops`, `flops_<dtype>`, `bytes`, `comm_bytes`, `comm_bytes_<link>`, plus
        `estimated_energy_j` (dense-hw,
        with its static part from the duration given to `estimate_model`, if any),
        `estimated_sparse_ideal_energy_j` and `nonzero_params`.
        """
        dense = self.counts.dense_hw
        row: dict[str, float] = {
            "flops": dense.flops * steps,
            "bytes": dense.bytes * steps,
            "comm_bytes": dense.comm_bytes_total * steps,
        }
        for dtype, flops in dense.flops_by_dtype.items():
            row[f"flops_{dtype}"] = flops * steps
        for channel, nbytes in dense.comm_bytes.items():
            row[f"comm_bytes_{channel}"] = nbytes * steps
        row["estimated_energy_j"] = self.energy[DENSE_HW].energy_j * steps
        row["estimated_sparse_ideal_energy_j"] = self.energy[SPARSE_IDEAL].energy_j * steps
        row["nonzero_params"] = float(self.counts.nonzero.nonzero_params)
        return row


def estimate_model(
    model: nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    profile: Profile | str = DEFAULT_PROFILE,
    *,
    mode: str = "inference",
    duration_s: float | None = None,
    host_to_device: bool | None = None,
    world_size: int = 1,
    optimizer: str = "sgd-momentum",
    memory_level: str | None = None,
    precision: str = FP32,
    static: StaticPower | None = None,
) -> ModelEstimate:
    """Estimate one step (one batch of `example_input`) of a prepared model.

    `profile`: a Profile, a built-in name or a .toml path. `duration_s`: the measured
    duration of one step, for the static part (else the profile's roofline, if any).
    `host_to_device`: whether inputs are copied to the device each step (default: the
    profile's `host_to_device_inputs`). `world_size`: data-parallel ranks (training).
    `precision`: fp32, tf32, bf16 or fp16 (how the step runs, how its FLOPs are priced).
    `static`: the static power to use instead of the profile's (a measured idle power).
    The model is not modified. Raises EnergyHarnessError on bad arguments.
    """
    if isinstance(profile, str):
        profile = load_profile(profile)
    if host_to_device is None:
        host_to_device = profile.host_to_device_inputs
    counts = count_step(
        model,
        example_input,
        mode=mode,
        host_to_device=host_to_device,
        world_size=world_size,
        optimizer=optimizer,
        precision=precision,
    )
    energy = {
        name: estimate_energy(
            counts.accounting(name),
            profile,
            duration_s=duration_s,
            memory_level=memory_level,
            static=static,
        )
        for name in (DENSE_HW, SPARSE_IDEAL)
    }
    return ModelEstimate(counts, profile, energy)
