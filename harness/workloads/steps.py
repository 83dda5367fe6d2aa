"""Workload steps: plain callables `step() -> samples processed`, so the meter stays out of
the hot path. An inference step is one forward pass; a training step is forward,
cross-entropy, backward and an SGD update on one fixed batch. Both run at a precision
(`harness.workloads.precision`: autocast for bf16/fp16, TF32 switches on CUDA)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from harness.errors import EnergyHarnessError
from harness.spec.precision import FP16, FP32
from harness.spec.train_config import TrainConfig
from harness.spec.variants import VariantUnsupported
from harness.workloads.precision import autocast, math_mode, precision_context

Step = Callable[[], int]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimizer (SGD with momentum, Adam, AdamW) over the model's trainable
    parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise EnergyHarnessError(
            f"{type(model).__name__} has no trainable parameters (is it quantized?); "
            "train the float model before quantizing"
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )


def inference_step(model: nn.Module, inputs: torch.Tensor, precision: str = FP32) -> Step:
    """A step that runs one forward pass of `model` (eval mode, inference mode) on `inputs`,
    at `precision` (checked beforehand with `check_precision_supported`)."""
    model.eval()
    batch = len(inputs)

    def step() -> int:
        with torch.inference_mode(), precision_context(precision, inputs.device):
            model(inputs)
        return batch

    return step


def training_step(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig | None = None,
    *,
    copy_model: bool = True,
    variant: str = "",
    precision: str = FP32,
) -> Step:
    """A step that runs forward, cross-entropy, backward and an SGD update on one batch.

    Works on a copy of `model` unless `copy_model=False`, so the prepared model is not
    changed. Pruning is not enforced: repeated steps let zeroed weights grow back (the
    arithmetic per step is the same on dense hardware). The forward pass and the loss run
    at `precision` (fp16 with a gradient scaler, as mixed-precision training does).
    Raises VariantUnsupported for a model without trainable parameters (dynamic int8
    models run inference only).
    """
    if not any(p.requires_grad for p in model.parameters()):
        raise VariantUnsupported(
            variant or type(model).__name__,
            "the training step needs trainable float weights; quantized models run inference only",
        )
    model = copy.deepcopy(model) if copy_model else model
    model.train()
    optimizer = make_optimizer(model, config or TrainConfig())
    criterion = nn.CrossEntropyLoss()
    batch = len(inputs)
    device = inputs.device
    scaler = torch.amp.GradScaler(device.type, enabled=precision == FP16)

    def step() -> int:
        with math_mode(precision, device):
            optimizer.zero_grad(set_to_none=True)
            with autocast(precision, device):
                loss = criterion(model(inputs), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return batch

    return step


def run_iterations(step: Step, iterations: int) -> int:
    """Run `step` `iterations` times; returns the samples processed."""
    samples = 0
    for _ in range(iterations):
        done = step()
        if not isinstance(done, int) or done < 1:
            raise EnergyHarnessError(
                f"a workload step must return the number of samples it processed (>= 1), "
                f"got {done!r}"
            )
        samples += done
    return samples
