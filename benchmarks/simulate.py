"""How long a simulation takes: `python -m benchmarks.simulate [--resnet18]`.

Prints seconds per `simulate_model` call on an accelerator (default edge-systolic-64),
cold (an empty layer cache: SCALE-Sim runs every distinct layer shape in its worker
process) and warm (the same call again: every shape from the cache), for LeNet-5 dense,
LeNet-5 structured (50 % of the channels) and, with --resnet18, ResNet-18 (3x224x224;
cold takes minutes). Models have random weights (`harness.prepare.untrained`); the cache
is a temporary folder, so the figures do not depend on earlier runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.prepare.untrained import untrained_variant
from harness.simulate.cache import LayerCache
from harness.simulate.model import simulate_model


def _time(model_name: str, variant: str, accelerator: str, cache: LayerCache) -> list[str]:
    net, example, _ = untrained_variant(model_name, variant, 1)
    cells = []
    for label in ("cold", "warm"):
        started = time.perf_counter()
        sim = simulate_model(net, example[:1], accelerator, cache=cache)
        cells.append(f"{label} {time.perf_counter() - started:7.2f} s")
    shapes = len({tuple(x.layer.shape.as_list()) for x in sim.layers})
    return [
        f"{model_name} [{variant}]",
        f"{len(sim.layers)} layers, {shapes} shapes",
        *cells,
        f"SIMULATED {sim.energy_j * 1e6:.1f} uJ, {sim.cycles:,.0f} cycles",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="edge-systolic-64")
    parser.add_argument("--resnet18", action="store_true", help="also ResNet-18 (minutes)")
    args = parser.parse_args()
    cases = [("lenet5", "dense"), ("lenet5", "structured")]
    if args.resnet18:
        cases.append(("resnet18", "dense"))
    print(f"simulate_model on {args.accelerator}: seconds per call, cold and warm cache")
    with tempfile.TemporaryDirectory(prefix="energy-harness-bench-") as tmp:
        for model_name, variant in cases:
            cache = LayerCache(Path(tmp) / f"{model_name}-{variant}")
            print("  " + " | ".join(_time(model_name, variant, args.accelerator, cache)))


if __name__ == "__main__":
    main()
