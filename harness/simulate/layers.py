"""A PyTorch model as the layers a systolic array runs: every Conv2d and Linear call as a
SCALE-Sim layer shape (one sample), everything else as an analytic layer.

The model runs once on one sample with forward hooks (so a module called twice is two
layers). A Conv2d's padding is added to the input map (SCALE-Sim has no padding); its
`groups` are simulated as one group's convolution repeated `groups` times (a depthwise
layer is `channels` single-channel, single-filter convolutions: SCALE-Sim's "DP" layers,
without its name-based switch). A dilated kernel is simulated as its dilated extent. A
Linear layer (dynamic int8 too) is a GEMM: M = the rows of its input, K = in_features,
N = out_features.
A weight in which every group of 4 along the input holds at most 2 nonzeros (and about
half are nonzero) is marked 2:4 and simulated through SCALE-Sim's N:M support. Other
layers (pooling, normalisation, activations, flatten...) are counted analytically:
elements read and written. Functional
operations in `forward` (a residual `+`) are no modules and are not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.estimate.accounting import effective_weights, is_packed_quantized

SIMULATED = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class LayerShape:
    """One layer in SCALE-Sim's convolution topology (one sample, one group)."""

    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride_h: int
    stride_w: int
    sparsity_n: int = 1  # N of N:M structured sparsity (1:1 = dense)
    sparsity_m: int = 1

    @property
    def ofmap_h(self) -> int:
        return math.ceil((self.ifmap_h - self.filter_h + self.stride_h) / self.stride_h)

    @property
    def ofmap_w(self) -> int:
        return math.ceil((self.ifmap_w - self.filter_w + self.stride_w) / self.stride_w)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the dense layer (SCALE-Sim's num_mac)."""
        window = self.filter_h * self.filter_w * self.channels
        return self.ofmap_h * self.ofmap_w * self.filters * window

    def gemm(self) -> tuple[int, int, int]:
        """(S_R, S_C, T) of the output-stationary mapping: output pixels, filters, window."""
        window = self.filter_h * self.filter_w * self.channels
        return self.ofmap_h * self.ofmap_w, self.filters, window

    def compulsory_words(self) -> dict[str, int]:
        """Each operand moved once: the (padded) input map, the filters (their nonzeros
        under N:M) and the output map, in elements."""
        weights = self.filter_h * self.filter_w * self.channels * self.filters
        return {
            "ifmap": self.ifmap_h * self.ifmap_w * self.channels,
            "filter": weights * self.sparsity_n // self.sparsity_m,
            "ofmap": self.ofmap_h * self.ofmap_w * self.filters,
        }

    def as_list(self) -> list[int]:
        """The topology row SCALE-Sim reads (after the layer name)."""
        return [
            self.ifmap_h,
            self.ifmap_w,
            self.filter_h,
            self.filter_w,
            self.channels,
            self.filters,
            self.stride_h,
            self.stride_w,
            self.sparsity_n,
            self.sparsity_m,
        ]


@dataclass(frozen=True)
class MappedLayer:
    """A Conv2d or Linear call: its shape, how often it repeats (groups), its weight's
    density (nonzero fraction) and how it was mapped (`conv`, `grouped`, `depthwise`,
    `linear`, with `2:4` when simulated as N:M)."""

    name: str
    kind: str
    shape: LayerShape
    repeats: int
    density: float

    @property
    def macs(self) -> int:
        return self.shape.macs * self.repeats


@dataclass(frozen=True)
class AnalyticLayer:
    """A module the simulator does not model: elements read and written (one sample)."""

    name: str
    kind: str
    elements_in: int
    elements_out: int


def _pair(value: object) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _is_two_four(weight: torch.Tensor) -> bool:
    """Every group of 4 consecutive weights along the input holds at most 2 nonzeros, and
    about half are nonzero (a 90 % unstructured pruning also fits the pattern; it is no
    2:4 layer and is simulated dense)."""
    flat = weight.reshape(weight.shape[0], -1)
    if flat.shape[1] % 4 or flat.device.type == "meta" or not flat.numel():
        return False
    nonzero = flat.reshape(flat.shape[0], -1, 4) != 0
    density = float(nonzero.float().mean())
    return bool((nonzero.sum(-1) <= 2).all()) and density > 0.375


def _dense_weight(module: nn.Module) -> torch.Tensor:
    if is_packed_quantized(module):  # dynamic int8: weight() unpacks it
        return module.weight().dequantize()
    weight = module.weight.detach()
    if type(weight) not in (torch.Tensor, nn.Parameter) and hasattr(weight, "to_dense"):
        weight = weight.to_dense()
    return weight


def _sparsity(module: nn.Module) -> tuple[int, int, str]:
    return (2, 4, " 2:4") if _is_two_four(_dense_weight(module)) else (1, 1, "")


def _conv(name: str, module: nn.Conv2d, x: torch.Tensor, out: torch.Tensor, density: float):
    c_in, h, w = x.shape[-3:]
    g = module.groups
    kh, kw = _pair(module.kernel_size)
    dh, dw = _pair(module.dilation)
    sh, sw = _pair(module.stride)
    kh, kw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    oh, ow = out.shape[-2:]
    # the padded input SCALE-Sim must see to produce the output PyTorch produced
    ih, iw = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    n, m, tag = _sparsity(module)
    shape = LayerShape(
        max(ih, kh), max(iw, kw), kh, kw, c_in // g, module.out_channels // g, sh, sw, n, m
    )
    kind = "conv" if g == 1 else ("depthwise" if g == c_in else "grouped")
    return MappedLayer(name, kind + tag, shape, g, density)


def _linear(name: str, module: nn.Module, x: torch.Tensor, density: float) -> MappedLayer:
    rows = max(1, x.numel() // x.shape[-1])
    k, n_out = module.in_features, module.out_features  # also a dynamic-int8 Linear's
    n, m, tag = _sparsity(module)
    shape = LayerShape(rows, k, 1, k, 1, n_out, 1, 1, n, m)
    return MappedLayer(name, "linear" + tag, shape, 1, density)


def _numel(tree: object) -> int:
    if isinstance(tree, torch.Tensor):
        return tree.numel()
    if isinstance(tree, (tuple, list)):
        return sum(_numel(t) for t in tree)
    return 0


def map_model(
    model: nn.Module, sample: torch.Tensor
) -> tuple[list[MappedLayer], list[AnalyticLayer]]:
    """The simulated and the analytic layers of one forward pass of `sample` (one sample,
    batch 1, on the model's device). The model is run in eval mode without gradients and
    left as it was."""
    densities = {w.name: w.density for w in effective_weights(model)}
    mapped: list[MappedLayer] = []
    analytic: list[AnalyticLayer] = []

    def hook(name: str):
        def record(module: nn.Module, args: tuple, out: object) -> None:
            x = args[0] if args else None
            density = densities.get(f"{name}.weight" if name else "weight", 1.0)
            if isinstance(module, nn.Conv2d) and isinstance(x, torch.Tensor):
                mapped.append(_conv(name, module, x, out, density))
            elif (isinstance(module, nn.Linear) or is_packed_quantized(module)) and isinstance(
                x, torch.Tensor
            ):
                mapped.append(_linear(name, module, x, density))
            else:
                kind = type(module).__name__
                analytic.append(AnalyticLayer(name, kind, _numel(args), _numel(out)))

        return record

    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(sample)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return mapped, analytic
