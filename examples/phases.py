"""A plain training loop that marks its phases; run it under `energy-harness measure`:

    energy-harness measure -- python examples/phases.py

`measure` prints the energy of each phase and of the time outside them (Python start-up,
imports). Run on its own, the phases cost nothing. A tiny model on random data: no
downloads, a few seconds on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from harness import phase

EPOCHS = 3
STEPS = 300

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
inputs, labels = torch.randn(STEPS, 128, 64), torch.randint(0, 10, (STEPS, 128))

for epoch in range(1, EPOCHS + 1):
    with phase(f"epoch-{epoch}"):
        for x, y in zip(inputs, labels, strict=True):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    with phase("eval"), torch.no_grad():
        accuracy = (model(inputs).argmax(2) == labels).float().mean().item()
    print(f"epoch {epoch}: loss {loss.item():.3f}, accuracy {accuracy:.2f}")
