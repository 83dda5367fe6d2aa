"""Energy per epoch, per N steps and per validation of a Lightning `Trainer`.

    from harness.integrations.lightning import EnergyCallback
    trainer = lightning.pytorch.Trainer(max_epochs=5, callbacks=[EnergyCallback()])

Needs `pip install 'energy-harness[lightning]'`. The metrics (`energy/epoch_j`, ... see
`harness.integrations.callbacks`) go to every logger of the trainer (TensorBoard, W&B,
CSV) at the trainer's global step; the run directory is written as by `harness.track`.
A batch that is a dict with `input_ids` (or a tensor of token ids) also gives
`energy/j_per_token`.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as exc:  # one line saying what to install
    raise ImportError(
        f"{__name__} needs lightning: pip install 'energy-harness[lightning]' ({exc})"
    ) from exc

from harness.integrations.callbacks import Metrics, TrainingEnergy


def _batch_counts(batch: Any) -> tuple[int, int]:
    """Samples and tokens of a batch (tokens: the size of `input_ids`, else 0)."""
    first = batch
    if isinstance(batch, dict):
        ids = batch.get("input_ids")
        if ids is not None and hasattr(ids, "numel"):
            return int(ids.shape[0]), int(ids.numel())
        first = next(iter(batch.values()), None)
    elif isinstance(batch, list | tuple) and batch:
        first = batch[0]
    shape = getattr(first, "shape", None)
    return (int(shape[0]) if shape else 0), 0


class EnergyCallback(pl.Callback):
    """Tracks a Lightning training: see the module docstring.

    `every_n_steps`: also a window per N training batches (0: none); the other keywords
    go to `harness.track` (out, country, region, carbon_intensity, pue, probes,
    powercap_root, predict_after_epochs, timeline_hz, say).
    """

    def __init__(self, every_n_steps: int = 0, **tracker_options: Any) -> None:
        super().__init__()
        self.energy = TrainingEnergy(every_n_steps, **tracker_options)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        self.energy.train_begin(type(pl_module).__name__, epochs, device=str(pl_module.device))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.energy.epoch_begin()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        samples, tokens = _batch_counts(batch)
        self._log(trainer, self.energy.step_end(samples, tokens))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, self.energy.epoch_end())

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.energy.eval_begin()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, self.energy.eval_end())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, self.energy.train_end())

    def _log(self, trainer: pl.Trainer, metrics: Metrics) -> None:
        """To every logger of the trainer (rank 0 only), at its global step."""
        if not metrics or not self.energy.writes:
            return
        for logger in trainer.loggers:
            logger.log_metrics(dict(metrics), step=trainer.global_step)
