"""A Lightning `Trainer` with energy per epoch, per validation and a prediction.

    python examples/lightning_trainer.py [RUN_DIR]

A small LightningModule on random data (no download): a few seconds on a CPU. Needs
`pip install 'energy-harness[lightning]'`. The energy metrics go to the trainer's
loggers; here a CSV logger, whose metrics.csv is printed at the end.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from harness.integrations.lightning import EnergyCallback

EPOCHS = 3


class SmallClassifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))

    def training_step(self, batch, batch_idx):  # noqa: ANN001
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):  # noqa: ANN001
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g))
    return DataLoader(data, batch_size=64)


def main(out: str | None = None) -> list[dict[str, str]]:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = pl.Trainer(
            max_epochs=EPOCHS,
            accelerator="cpu",
            devices=1,
            callbacks=[EnergyCallback(out=out)],
            logger=pl.loggers.CSVLogger(scratch),
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        trainer.fit(SmallClassifier(), loader(2048, 0), loader(256, 1))
        with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r.get("energy/epoch_j")]
    for row in rows:
        print(
            f"step {row['step']}: {float(row['energy/epoch_j']):.3f} J, "
            f"{float(row['energy/power_w']):.2f} W, "
            f"{float(row['energy/co2_g']) * 1000:.3f} mg CO2"
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
