"""A plain PyTorch loop under `harness.track`: energy per epoch and evaluation, a prediction.

    python examples/track_loop.py [RUN_DIR]

The tracker writes a run directory in a suite run's format (`report`, `compare` and
`merge` read it), predicts the whole training after the first epoch and ends with one
line: energy, its source, average power and CO2. A tiny model on random data: no
downloads, a few seconds on a CPU; no extra needed.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

import harness
from harness.measure.sources import source_label

EPOCHS = 3
STEPS = 200
BATCH = 128


def main(out: str | None = None) -> harness.Tracker:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    inputs, labels = torch.randn(STEPS, BATCH, 64), torch.randint(0, 10, (STEPS, BATCH))
    with harness.track("mlp-random", out=out, epochs=EPOCHS, batch_size=BATCH) as tracker:
        for epoch in range(1, EPOCHS + 1):
            with harness.phase(f"epoch-{epoch}", samples=STEPS * BATCH):
                for x, y in zip(inputs, labels, strict=True):
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
            with harness.phase("eval"), torch.no_grad():
                accuracy = (model(inputs).argmax(2) == labels).float().mean().item()
            print(f"epoch {epoch}: accuracy {accuracy:.2f} on the training batches")
    for p in tracker.phases:
        if p.kind == "epoch":
            print(
                f"{p.name}: {p.energy_j:.3f} J, {p.power_w:.2f} W, "
                f"{p.co2_g * 1000:.3f} mg CO2 ({source_label(p.source)})"
            )
    return tracker


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
