"""A small accelerator for fast simulations: the edge profile's file with a 16 x 16
array (and, where asked, another dataflow or bandwidth), written to a folder."""

from __future__ import annotations

from pathlib import Path

from harness.simulate.accelerators import builtin_accelerators


def small_accelerator(
    folder: Path, rows: int = 16, cols: int = 16, dataflow: str = "os", words_per_cycle: int = 64
) -> Path:
    text = builtin_accelerators()["edge-systolic-64"].read_text(encoding="utf-8")
    text = text.replace('name = "edge-systolic-64"', 'name = "small-test-array"')
    text = text.replace("rows = 64", f"rows = {rows}").replace("cols = 64", f"cols = {cols}")
    text = text.replace('dataflow = "os"', f'dataflow = "{dataflow}"')
    text = text.replace("words_per_cycle = 8", f"words_per_cycle = {words_per_cycle}")
    path = folder / f"small-{rows}x{cols}-{dataflow}.toml"
    path.write_text(text, encoding="utf-8")
    return path
