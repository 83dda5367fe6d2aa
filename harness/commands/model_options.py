"""The options of commands that build one model from the command line (`estimate`,
`simulate`): which model, its variant's parameters, its seed and its input shape.

One definition each, so the two commands read them alike.
"""

from __future__ import annotations

from typing import Annotated

import typer

from harness.errors import EnergyHarnessError

ModelArgument = Annotated[
    str,
    typer.Argument(metavar="MODEL", help="Model name (e.g. lenet5) or package.module:factory."),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar="KEY=VALUE",
        help="Variant parameter (repeat), e.g. --param sparsity=0.9.",
    ),
]
SeedOption = Annotated[
    int, typer.Option(help="Seed of the random initial weights (pruning picks by them).")
]
InputShapeOption = Annotated[
    str | None,
    typer.Option(
        "--input-shape",
        metavar="SIZES",
        help="One sample's shape, e.g. 3,224,224 (default: the model's own). Factories "
        "taking in_channels, in_features or seq_len are built for it.",
    ),
]


def parse_params(pairs: list[str] | None) -> dict[str, object]:
    """`key=value` pairs; values read as TOML literals (0.9, true, "x"), else as text."""
    import tomllib

    params: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise EnergyHarnessError(f"--param {pair!r}: write it as key=value, e.g. sparsity=0.9")
        try:
            params[key.strip()] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = text.strip()
    return params


def input_shape(text: str | None) -> tuple[int, ...] | None:
    """`C,H,W` (or any number of sizes) as a tuple of positive ints."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(n < 1 for n in shape):
        raise EnergyHarnessError(
            f"--input-shape {text!r}: give one sample's sizes as positive integers separated "
            "by commas, e.g. 3,224,224 (or 128 for a token sequence)"
        )
    return shape
