"""A disk cache of prepared (trained, pruned, quantized) models, keyed by a hash.

The key is a SHA-256 over canonical JSON of everything that determines the model: model
name and constructor arguments, the dataset's fingerprint, variant and its parameters,
training settings, seed and `CACHE_FORMAT`. The device it was trained on is not part of
it. One file per key, `<dir>/<key>.pt`, written atomically (safe for parallel shards).

What a file holds (read back with `torch.load(weights_only=True)`, so only tensors and
plain values: no pickled classes or code):

- `state_dict`: the model's weights, pruning masks already folded in (zeros stored as
  zeros). For int8-dynamic models it is the quantized state dict (int8 weights, scales).
- `model_name`, `model_kwargs`: the architecture the file was made for. They are only
  compared: a file never chooses what is built. `load` builds the model the caller names
  (from its own suite and key) and treats a file made for anything else as a miss.
- `structure`: for physically pruned models, the module attributes that differ from a
  freshly built model (e.g. `{"conv1": {"out_channels": 3}}`); parameter shapes come from
  `state_dict`. Rebuilding = build, apply attributes, resize tensors, load weights.
- `quantized`: the module types that were dynamically quantized to int8 (e.g.
  `["Linear"]`); rebuilding re-runs `quantize_dynamic` on the rebuilt float model before
  loading the quantized weights.
- `meta`: plain values the caller stores (accuracy, variant parameters, steps run).

A file that cannot be read (truncated, older format, foreign, or made for another key,
model or architecture) is a cache miss with a warning; the caller prepares the model
again and overwrites it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import EnergyHarnessError, HarnessWarning
from harness.prepare.cache_dir import CACHE_DIR_ENV, default_cache_dir
from harness.prepare.hardware import quantize_dynamic_int8
from harness.spec.catalog import build_model

CACHE_FORMAT = 1  # bump when the meaning of cached files changes

_PLAIN = (bool, int, float, str, type(None))
# module types torch quantizes dynamically to int8; a file may name only these
QUANTIZABLE = ("Linear", "LSTM", "GRU", "LSTMCell", "GRUCell", "RNNCell")


def _canonical(value: Any) -> Any:
    """JSON-ready form of a key field: dicts sorted, tuples as lists, dtypes as names."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, _PLAIN):
        return value
    raise EnergyHarnessError(
        f"cache key: value {value!r} of type {type(value).__name__} cannot be hashed; "
        "use numbers, strings, booleans, lists or tables"
    )


def cache_key(fields: Mapping[str, Any]) -> str:
    """A 24-hex-digit key over `fields` and CACHE_FORMAT (dict order does not matter)."""
    text = json.dumps({"format": CACHE_FORMAT, **_canonical(fields)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _plain_value(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    return isinstance(value, tuple | list) and all(_plain_value(v) for v in value)


def _public_attributes(module: nn.Module) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(module).items()
        if not k.startswith("_") and k != "training" and _plain_value(v)
    }


def capture_structure(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, Any]]:
    """Per module, the public plain attributes of `model` that differ from `reference`.

    `reference` is the same architecture freshly built; for a model that was not
    physically pruned the result is empty.
    """
    ref_modules = dict(reference.named_modules())
    replaced: list[str] = []  # modules swapped for another type (quantized): skip inside
    structure: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in replaced):
            continue
        ref = ref_modules.get(name)
        if ref is not None and type(ref) is not type(module):
            replaced.append(name)
        if ref is None:
            raise EnergyHarnessError(
                f"cannot cache this model: module {name!r} does not exist in a freshly "
                "built model of the same name (was a layer added after building?)"
            )
        # only attributes the float module has: quantized replacements add scales etc.
        ref_attrs = _public_attributes(ref)
        changed = {
            k: v
            for k, v in _public_attributes(module).items()
            if k in ref_attrs and ref_attrs[k] != v
        }
        if changed:
            structure[name] = changed
    return structure


def apply_structure(
    model: nn.Module, structure: Mapping[str, Mapping[str, Any]], state_dict: Mapping[str, Any]
) -> nn.Module:
    """Reshape a freshly built `model` to the recorded attributes and tensor shapes.

    Only attributes the freshly built module already has, with plain values, are set;
    anything else raises ValueError.
    """
    modules = dict(model.named_modules())
    for name, attrs in structure.items():
        module = modules.get(name)
        if module is None or not isinstance(attrs, Mapping):
            raise ValueError(f"structure names no module of this model: {name!r}")
        own = _public_attributes(module)
        for attr, value in attrs.items():
            if attr not in own or not _plain_value(value):
                raise ValueError(f"structure sets {name}.{attr}, which the model does not have")
            setattr(module, attr, tuple(value) if isinstance(value, list) else value)
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        owner_name, _, attr = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            continue
        if attr in owner._parameters and owner._parameters[attr] is not None:
            old = owner._parameters[attr]
            if old.shape != tensor.shape:
                new = torch.empty(tensor.shape, dtype=old.dtype, device=old.device)
                owner._parameters[attr] = nn.Parameter(new, requires_grad=old.requires_grad)
        elif attr in owner._buffers and owner._buffers[attr] is not None:
            old_buffer = owner._buffers[attr]
            if old_buffer.shape != tensor.shape:
                owner._buffers[attr] = torch.empty(
                    tensor.shape, dtype=old_buffer.dtype, device=old_buffer.device
                )
    return model


def quantized_module_types(model: nn.Module) -> list[str]:
    """Names of float module types that were replaced by dynamic int8 modules."""
    found = set()
    for module in model.modules():
        cls = type(module)
        if cls.__module__.startswith("torch.ao.nn.quantized.dynamic"):
            found.add(cls.__name__.replace("Dynamic", "").replace("Quantized", ""))
    return sorted(found)


def rebuild_model(
    model_name: str,
    model_kwargs: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    structure: Mapping[str, Mapping[str, Any]] | None = None,
    quantized: list[str] | None = None,
) -> nn.Module:
    """Build `model_name`, reshape it to `structure`, quantize if needed, load weights.

    `quantized` may name only QUANTIZABLE module types (else ValueError).
    """
    unknown = sorted(set(quantized or []) - set(QUANTIZABLE))
    if unknown:
        raise ValueError(f"quantized module types {unknown}; allowed: {', '.join(QUANTIZABLE)}")
    model = build_model(model_name, **dict(model_kwargs))
    if structure:
        apply_structure(model, structure, state_dict)
    if quantized:
        model = quantize_dynamic_int8(model, quantized)
    model.load_state_dict(state_dict, strict=True)  # a plain dict would lose `_metadata`
    return model.eval()


def _cpu_state_dict(model: nn.Module) -> OrderedDict[str, Any]:
    """The state dict on the CPU, keeping `_metadata` (module versions: quantized modules
    read their weights differently without it)."""
    state = model.state_dict()
    out: OrderedDict[str, Any] = OrderedDict(
        (k, v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state.items()
    )
    out._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
    return out


def _check_payload(
    payload: Any, key: str, model_name: str, model_kwargs: Mapping[str, Any]
) -> None:
    """Raise ValueError unless the file was written for exactly this key and model."""
    if not isinstance(payload, Mapping):
        raise ValueError("not a cache entry")
    if payload.get("format") != CACHE_FORMAT:
        raise ValueError(f"format {payload.get('format')!r}, expected {CACHE_FORMAT}")
    expected = {"key": key, "model_name": model_name, "model_kwargs": _canonical(model_kwargs)}
    for field, value in expected.items():
        if payload.get(field) != value:
            raise ValueError(
                f"made for {field} {payload.get(field)!r}, not {value!r} (a changed or "
                "foreign file)"
            )


@dataclass
class CachedModel:
    """A model read back from the cache, the meta stored with it and its file."""

    model: nn.Module
    meta: dict[str, Any]
    path: Path


class ModelCache:
    """Prepared models on disk under `root` (default: $ENERGY_HARNESS_CACHE or results/cache).

    `enabled=False` makes every lookup a miss and every save a no-op; `read_only=True`
    reads hits but saves nothing (a folder this process cannot write). A save that fails
    (full disk, folder gone) warns once, leaves no partial file and makes the cache read
    only: the models already prepared are still measured.
    """

    def __init__(
        self, root: str | Path | None = None, *, enabled: bool = True, read_only: bool = False
    ) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.read_only = read_only

    def write_problem(self) -> str | None:
        """Why this process cannot save into the cache folder (it tries), or None."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=self.root)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            return f"cannot write the model cache {self.root} ({exc.strerror or exc})"
        return None

    def path_for(self, key: str) -> Path:
        """The file that holds (or would hold) the model with this key."""
        return self.root / f"{key}.pt"

    def load(
        self, key: str, model_name: str, model_kwargs: Mapping[str, Any]
    ) -> CachedModel | None:
        """The cached model for `key`, built as `model_name(**model_kwargs)`, or None.

        The caller names the architecture (from its own suite); the file only supplies
        weights. A missing file is a miss; an unreadable one, or one made for another key,
        model or arguments, is a miss with a warning.
        """
        path = self.path_for(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            with warnings.catch_warnings():  # torch's own, when it reads quantized tensors
                warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
                payload = torch.load(path, map_location="cpu", weights_only=True)
            _check_payload(payload, key, model_name, model_kwargs)
            model = rebuild_model(
                model_name,
                model_kwargs,
                payload["state_dict"],
                payload.get("structure"),
                payload.get("quantized"),
            )
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a miss
            warnings.warn(
                f"ignoring unreadable cache file {path} ({type(exc).__name__}: {exc}); "
                "the model is prepared again and the file overwritten",
                stacklevel=2,
            )
            return None
        meta = payload.get("meta", {})
        return CachedModel(model, dict(meta) if isinstance(meta, Mapping) else {}, path)

    def save(
        self,
        key: str,
        model: nn.Module,
        *,
        model_name: str,
        model_kwargs: Mapping[str, Any],
        key_fields: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Path | None:
        """Write `model` under `key` atomically; returns the file, or None when disabled,
        read only, or when the write failed.

        `meta` must hold plain values only (numbers, strings, lists, dicts). A failed write
        (OSError, or torch's RuntimeError on a short write) removes the partial file, warns
        once (HarnessWarning naming the fix) and makes this cache read only.
        """
        if not self.enabled or self.read_only:
            return None
        reference = build_model(model_name, **dict(model_kwargs))
        quantized = quantized_module_types(model)
        payload = {
            "format": CACHE_FORMAT,
            "key": key,
            "key_fields": _canonical(key_fields or {}),
            "model_name": model_name,
            "model_kwargs": _canonical(model_kwargs),
            "structure": capture_structure(model, reference),
            "quantized": quantized,
            "state_dict": _cpu_state_dict(model),
            "meta": _canonical(meta or {}),
        }
        path = self.path_for(key)
        try:
            _write_atomically(path, payload)
        except (OSError, RuntimeError) as exc:
            self.read_only = True
            cause = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            warnings.warn(
                HarnessWarning(
                    f"cannot write the model cache {path} ({cause}); prepared models are no "
                    f"longer saved in this run. Free some space, point ${CACHE_DIR_ENV} "
                    "elsewhere, or run with --no-cache"
                ),
                stacklevel=2,
            )
            return None
        return path


def _write_atomically(path: Path, payload: Mapping[str, Any]) -> None:
    """torch.save into a temporary file beside `path`, then rename; on any failure the
    temporary file is removed and the error raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
