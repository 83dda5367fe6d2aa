"""A case on the suite's simulated accelerator (`simulate = ["NAME"]`): its cases.csv
columns. A simulation that fails leaves its reason in `simulated_note` and the case's
measured figures as they are."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import error_text
from harness.rows.simulated import simulated_columns


def _one_sample(inputs: Any) -> Any:
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    return first[:1]


def simulation_columns(
    accelerators: tuple[str, ...],
    mode: str,
    model: Any,
    inputs: Any,
    row: Mapping[str, Any],
    cache_root: Path | None,
    phase: Callable[[str], None],
) -> dict[str, Any]:
    """The simulated columns of a case's `row` (none without `accelerators`): `model` on
    the first accelerator, one sample of `inputs`, layers cached under `cache_root`;
    `phase` hears the progress. Only inference is simulated (a forward pass)."""
    if not accelerators:
        return {}
    if mode != "inference":
        note = f"not simulated: {mode} (the simulator runs inference, a forward pass)"
        return simulated_columns({"simulated_note": note}, row)
    from harness.simulate.cache import LayerCache
    from harness.simulate.model import simulate_model

    name = accelerators[0]
    cache = LayerCache(cache_root / "simulate" if cache_root is not None else None)

    def progress(done: int, todo: int) -> None:
        phase(f"simulating on {name}: {done}/{todo} layer shapes")

    try:
        sim = simulate_model(model, _one_sample(inputs), name, cache=cache, progress=progress)
        figures = sim.case_columns()
    except Exception as exc:  # noqa: BLE001 - the measured case is kept, the reason written
        reason = " ".join(error_text(exc).split())  # one line in the CSV
        figures = {"simulated_accelerator": name, "simulated_note": f"failed: {reason}"}
    return simulated_columns(figures, row)
