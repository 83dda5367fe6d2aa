"""What the energy callbacks cost a training step: `python -m benchmarks.callback_overhead`.

Drives each callback's hooks as its trainer would (the real `transformers` and
`lightning` classes, rapl over a static fake powercap tree in RAM, no run directory
written to disk) and prints, per step, the microseconds the callback adds beside a
10 ms step: the per-step hook (median and 95th percentile over many steps), and the
epoch and N-step windows spread over the steps they cover. Goal: under 1 % of the step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

from benchmarks.overhead import fake_powercap_tree
from harness.measure.meter import ShortWindowWarning

STEP_S = 0.010  # the step the costs are set beside
STEPS_PER_EPOCH = 200


def _timed(call: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def _hf(options: dict, every_n_steps: int) -> tuple[Callable, Callable, Callable]:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from harness.integrations.hf import EnergyCallback

    args = TrainingArguments(output_dir=options["out"].parent / "hf", report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    state.num_train_epochs = 10
    callback = EnergyCallback(every_n_steps=every_n_steps, **options)
    callback.on_train_begin(args, state, control)
    callback.on_epoch_begin(args, state, control)

    def epoch() -> None:
        callback.on_epoch_end(args, state, control)
        callback.on_epoch_begin(args, state, control)

    def step() -> None:
        callback.on_step_end(args, state, control)

    return step, epoch, lambda: callback.on_train_end(args, state, control)


def _lightning(options: dict, every_n_steps: int) -> tuple[Callable, Callable, Callable]:
    import torch

    from harness.integrations.lightning import EnergyCallback

    callback = EnergyCallback(every_n_steps=every_n_steps, **options)
    trainer = types.SimpleNamespace(loggers=[], global_step=0, max_epochs=10)
    module = types.SimpleNamespace(device="cpu")
    batch = (torch.zeros(64, 8), torch.zeros(64))
    callback.on_train_start(trainer, module)
    callback.on_train_epoch_start(trainer, module)

    def epoch() -> None:
        callback.on_train_epoch_end(trainer, module)
        callback.on_train_epoch_start(trainer, module)

    def step() -> None:
        callback.on_train_batch_end(trainer, module, None, batch, 0)

    return step, epoch, lambda: callback.on_train_end(trainer, module)


def measure(kind: str, every_n_steps: int, steps: int, root: Path, out: Path) -> dict:
    """Seconds per step of one callback: its hook, and its windows spread over steps."""
    options = {
        "out": out,
        "probes": ["rapl"],
        "powercap_root": root,
        "timeline_hz": 0,
        "say": None,
    }
    step, epoch, end = (_hf if kind == "hf" else _lightning)(options, every_n_steps)
    step_s = _timed(step, steps)
    epoch_s = _timed(epoch, 20)
    end()
    hook = statistics.median(step_s)
    return {
        "hook_median_s": hook,
        "hook_p95_s": statistics.quantiles(step_s, n=20)[-1],
        "epoch_s": statistics.median(epoch_s),
        # the mean spreads the N-step windows over the steps they cover
        "per_step_s": statistics.fmean(step_s) + statistics.median(epoch_s) / STEPS_PER_EPOCH,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps timed per row")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ShortWindowWarning)  # windows of no length, on purpose
    print(f"cost per step beside a {STEP_S * 1e3:.0f} ms step ({STEPS_PER_EPOCH} steps per epoch)")
    head = ("hook µs", "p95 µs", "epoch µs", "per step", "% step")
    print(f"{'callback':<33}" + "".join(f" {h:>9}" for h in head))
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        root = fake_powercap_tree(Path(d) / "powercap")
        for n, (kind, every) in enumerate(
            [("hf", 0), ("hf", 50), ("lightning", 0), ("lightning", 50)]
        ):
            r = measure(kind, every, args.steps, root, Path(d) / f"run-{n}")
            label = f"{kind}" + (f", window every {every} steps" if every else "")
            print(
                f"{label:<33} {r['hook_median_s'] * 1e6:9.1f} {r['hook_p95_s'] * 1e6:8.1f} "
                f"{r['epoch_s'] * 1e6:9.0f} {r['per_step_s'] * 1e6:9.1f} "
                f"{r['per_step_s'] / STEP_S * 100:6.3f}%"
            )


if __name__ == "__main__":
    main()
