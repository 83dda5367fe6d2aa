"""Energy per epoch, per N steps and per evaluation of a Hugging Face `Trainer`.

    from harness.integrations.hf import EnergyCallback
    trainer = Trainer(model, args, train_dataset=..., callbacks=[EnergyCallback()])

Needs `pip install 'energy-harness[hf]'`. The metrics (`energy/epoch_j`, ... see
`harness.integrations.callbacks`) go through `Trainer.log`, so every reporter the trainer
has (TensorBoard, W&B, the console) shows them, and `trainer.state.log_history` keeps
them. The run directory is written as by `harness.track`.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:  # one line saying what to install
    raise ImportError(
        f"{__name__} needs transformers: pip install 'energy-harness[hf]' ({exc})"
    ) from exc

from harness.integrations.callbacks import Metrics, TrainingEnergy


def _trainer_of(callback: Any) -> Any:
    """The Trainer whose events call `callback` (found on the call stack: a callback is
    not handed its trainer), or None."""
    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        handler = getattr(owner, "callback_handler", None)
        if handler is not None and callback in getattr(handler, "callbacks", ()):
            return owner
        frame = frame.f_back
    return None


class EnergyCallback(TrainerCallback):
    """Tracks a `Trainer`'s training: see the module docstring.

    `every_n_steps`: also a window per N optimizer steps (0: none); the other keywords
    go to `harness.track` (out, country, region, carbon_intensity, pue, probes,
    powercap_root, predict_after_epochs, timeline_hz, say).
    """

    def __init__(self, every_n_steps: int = 0, **tracker_options: Any) -> None:
        self.energy = TrainingEnergy(every_n_steps, **tracker_options)
        self._trainer: Any = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        self._trainer = _trainer_of(self)
        self.energy.train_begin(
            type(model).__name__ if model is not None else "training",
            int(state.num_train_epochs) or None,
            batch_size=args.per_device_train_batch_size,
            device=str(args.device),
        )

    def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        self.energy.epoch_begin()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        samples = args.per_device_train_batch_size * args.gradient_accumulation_steps
        self._log(self.energy.step_end(samples), state)
        if control.should_evaluate:
            self.energy.eval_begin()

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self._log(self.energy.epoch_end(), state)
        if control.should_evaluate:
            self.energy.eval_begin()

    def on_evaluate(self, args, state, control, **kwargs):  # noqa: ANN001
        self._log(self.energy.eval_end(), state)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self._log(self.energy.train_end(), state)

    def _log(self, metrics: Metrics, state: Any) -> None:
        """Through the trainer's own logging; without a trainer found, into log_history."""
        if not metrics or not self.energy.writes:
            return
        if self._trainer is not None:
            self._trainer.log(dict(metrics))
        else:
            state.log_history.append({**metrics, "step": state.global_step})
