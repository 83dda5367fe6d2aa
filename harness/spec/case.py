"""One measured configuration of a suite: model x variant x mode x batch size x device."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.spec.variants import CONTROL_LABEL, variant_label

GROUP_FIELDS = ("model", "dataset", "mode", "batch_size", "device", "precision")
GroupKey = tuple[str, ...]


def group_key(row: Mapping[str, Any]) -> GroupKey:
    """What a case shares with the dense case it is compared with (its group): model,
    dataset, mode, batch size, device and precision, as text (a CSV row or a Case's
    columns alike)."""
    return tuple(str(row.get(name) or "") for name in GROUP_FIELDS)


@dataclass(frozen=True)
class Case:
    """One measured configuration. `case_id` is stable across runs (used by resume/compare)."""

    model: str
    dataset: str
    variant: str
    variant_params: tuple[tuple[str, Any], ...]
    mode: str
    batch_size: int
    device: str
    model_options: tuple[tuple[str, Any], ...] = ()
    precision: str = "fp32"  # the suite's precision (not part of case_id: runs compare)
    control: bool = False  # the A/A control: the dense model measured a second time

    @property
    def factory_options(self) -> dict[str, Any]:
        """The suite's arguments for the model's factory (`options`); `input_shape` is the
        data's, not the factory's."""
        return {k: v for k, v in self.model_options if k != "input_shape"}

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """One sample's shape as the suite gives it (`input_shape`), else None."""
        return dict(self.model_options).get("input_shape")

    @property
    def variant_label(self) -> str:
        """`magnitude[sparsity=0.9]`: the variant with the parameters the suite gave it;
        `dense (control)` for the A/A control."""
        return CONTROL_LABEL if self.control else variant_label(self.variant, self.variant_params)

    @property
    def case_id(self) -> str:
        return f"{self.model}/{self.variant_label}/{self.mode}/bs{self.batch_size}/{self.device}"

    @property
    def group(self) -> GroupKey:
        """The case's group (`group_key`): the cases measured together in rounds."""
        return group_key({**self.columns(""), "dataset": self.dataset})

    def columns(self, run_id: str) -> dict[str, Any]:
        """The columns that name this case, and its precision, in measurements.csv and
        cases.csv alike."""
        return {
            "run_id": run_id,
            "case_id": self.case_id,
            "model": self.model,
            "variant": self.variant_label,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "device": self.device,
            "precision": self.precision,
        }


CASE_ID_PARTS = ("model", "variant", "mode", "batch", "device")


def split_case_id(case_id: str) -> dict[str, str]:
    """`model/variant/mode/bsN/device` as CASE_ID_PARTS -> text; {} for another shape.

    The variant keeps any "/" its parameters hold (model, mode, batch and device have none).
    """
    parts = case_id.split("/")
    if len(parts) < len(CASE_ID_PARTS):
        return {}
    model, *variant, mode, batch, device = parts
    return dict(zip(CASE_ID_PARTS, (model, "/".join(variant), mode, batch, device), strict=True))
