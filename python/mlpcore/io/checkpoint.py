"""Checkpoints: one safetensors file per model (with optimizer state, epoch and extras).

A checkpoint is one safetensors file:

- tensors: every parameter under its PyTorch-style name from ``model.named_parameters()``
  (``0.weight`` (out, in), ``0.bias`` (out,)), in the model's dtype; every buffer under its
  PyTorch name from ``model.named_buffers()`` (BatchNorm's ``1.running_mean``, ``1.running_var``
  in the model's dtype, ``1.num_batches_tracked`` int64 of shape ()); with an optimizer, its flat
  state under ``__optimizer__.state``;
- ``__metadata__`` (string -> string, as safetensors requires): ``format = "mlpcore"``,
  ``format_version``, ``mlpcore_version``, ``dtype``, ``architecture`` (JSON: module types and
  constructor arguments, recursively; ``null`` for a model with a custom Python module, whose
  weights still load with :func:`load_state_into`; ``architecture_note`` then says why), and optionally ``optimizer`` (JSON: type,
  hyper-parameters, step), ``epoch`` and ``extra`` (JSON); ``dropout`` (JSON: module path ->
  [seed, counter] as strings, for every Dropout, custom models included) when the model has one.

Writes are atomic (``mlpcore.io.atomic``): a crash or an error in the middle of a save leaves the
previous checkpoint as it was. The architecture JSON of each layer is its registry entry's
``describe`` / ``build`` (``mlpcore.nn.registry``).

Reading checks the file before trusting it: a truncated, corrupt or foreign (non-mlpcore)
safetensors file raises ``ValueError`` naming the file and the problem; a missing file raises
``FileNotFoundError`` (an ``OSError``).

What this is not: a general serialiser. Only built-in modules are rebuilt by :func:`load`;
optimizers are not rebuilt either — :func:`load_checkpoint` returns the optimizer's
``state_dict()`` for ``opt.load_state_dict(...)`` on an optimizer made for the loaded model.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Optional

import numpy as np

from .._validate import is_int
from .._version import __version__
from ..nn import registry
from ..nn.dropout import Dropout
from ..nn.module import Module, check_buffer
from ..optim import Optimizer
from .atomic import PathLike, atomic_write

FORMAT = "mlpcore"
FORMAT_VERSION = "1"
_OPT_STATE = "__optimizer__.state"


def _safetensors_numpy():
    try:
        import safetensors.numpy as stn
    except ImportError as e:  # a core dependency; only a broken environment lands here
        raise ImportError("mlpcore checkpoints need the 'safetensors' package: pip install safetensors") from e
    return stn


def _architecture(model: Module) -> tuple:
    """(description or None, why it could not be described or None)."""
    try:
        return registry.describe(model), None
    except registry.Unsupported as e:
        return None, str(e)


# ----------------------------------------------------------------------------------------------
# encoding and decoding
# ----------------------------------------------------------------------------------------------

def _check_model(model) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a mlpcore Module, got {type(model).__name__}")


def save_bytes(model: Module, optimizer=None, epoch: Optional[int] = None, extra: Optional[dict] = None,
               allow_nonfinite: bool = False) -> bytes:
    """The checkpoint of ``model`` (and optionally ``optimizer``, ``epoch``, JSON-able ``extra``)
    as safetensors bytes; :func:`save` writes exactly these bytes to a file."""
    _check_model(model)
    tensors = {}
    for name, p in model.named_parameters():
        a = p._view(False) if p._arena.is_cpu else p._read()  # safetensors copies it out
        if not allow_nonfinite and not np.all(np.isfinite(a)):
            raise ValueError(f"model: parameter {name!r} contains NaN or Inf; refusing to save it "
                             "(pass allow_nonfinite=True to save anyway)")
        tensors[name] = a
    for name, b in model.named_buffers():  # running statistics: PyTorch's names and dtypes
        if not allow_nonfinite and not np.all(np.isfinite(b)):
            raise ValueError(f"model: buffer {name!r} contains NaN or Inf; refusing to save it "
                             "(pass allow_nonfinite=True to save anyway)")
        tensors[name] = np.array(b, order="C")  # ascontiguousarray would make the () count (1,)
    if not tensors:
        raise ValueError("model: has no parameters to save")
    arch, why_not = _architecture(model)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "mlpcore_version": _version(),
        "dtype": str(model.dtype), "architecture": json.dumps(arch),
    }
    if why_not:
        meta["architecture_note"] = why_not
    # every Dropout's RNG state by module path (also inside custom modules, which the
    # architecture cannot describe): a resumed run draws the same masks as an uninterrupted one
    drops = {path: [str(m._state.seed), str(m._state.counter)]
             for path, m in model.named_modules() if isinstance(m, Dropout)}
    if drops:
        meta["dropout"] = json.dumps(drops)
    if optimizer is not None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a mlpcore Optimizer, got {type(optimizer).__name__}")
        sd = optimizer.state_dict()
        hyper = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sd["hyper"].items()}
        meta["optimizer"] = json.dumps({"type": sd["type"], "hyper": hyper, "step": int(sd["step"])})
        tensors[_OPT_STATE] = np.ascontiguousarray(sd["state"])
    if epoch is not None:
        if not is_int(epoch) or epoch < 0:
            raise ValueError(f"epoch: expected a non-negative int or None, got {epoch!r}")
        meta["epoch"] = str(int(epoch))
    if extra is not None:
        try:
            meta["extra"] = json.dumps(extra)
        except (TypeError, ValueError) as e:
            raise TypeError(f"extra: expected JSON-serialisable data, got {type(extra).__name__}: {e}") from None
    return _safetensors_numpy().save(tensors, metadata=meta)


def _version() -> str:
    """The package version (recorded in every checkpoint)."""
    return __version__


def _decode(data: bytes, source: str) -> tuple[dict, dict]:
    """(tensors, metadata) of checkpoint bytes, after checking that they are a whole, well-formed
    mlpcore safetensors file. ``source`` names the file in errors."""
    meta = _decode_header(data, source)
    try:
        tensors = _safetensors_numpy().load(data)
    except Exception as e:  # SafetensorError derives from Exception only
        raise ValueError(f"{source}: corrupt or truncated tensor data ({e})") from None
    return tensors, meta


def _read_metadata(path: PathLike) -> dict:
    """The checked metadata of the checkpoint at ``path``, reading only its header."""
    source = os.fspath(path)
    with open(source, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        return _decode_header(head + f.read(min(n, 1 << 30)), source)


def _decode_header(data: bytes, source: str) -> dict:
    """The metadata of checkpoint bytes (at least the length field and the JSON header), after
    checking that they start a well-formed mlpcore safetensors file."""
    if len(data) < 8:
        raise ValueError(f"{source}: not a checkpoint: {len(data)} bytes is too short for a safetensors header "
                         "(truncated or empty file)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{source}: truncated or not a safetensors file: header says {n} bytes, "
                         f"file has {len(data) - 8} after the length field")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{source}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{source}: corrupt safetensors header (not a JSON object)")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{source}: a safetensors file, but not an mlpcore checkpoint (no format=mlpcore "
                         "metadata); for plain weights use mlpcore.load_state_into(model, path)"
                         if isinstance(meta, dict) else f"{source}: corrupt safetensors metadata")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{source}: checkpoint format version {meta.get('format_version')!r}; "
                         f"this mlpcore reads version {FORMAT_VERSION}")
    return meta


def _json_field(meta: dict, key: str, source: str):
    try:
        return json.loads(meta[key]) if key in meta else None
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{source}: corrupt '{key}' metadata ({e})") from None


def _model_from(tensors: dict, meta: dict, source: str, device: str) -> Module:
    arch = _json_field(meta, "architecture", source)
    if arch is None:
        why = meta.get("architecture_note", "not recorded")
        raise ValueError(f"{source}: the model's architecture could not be recorded ({why}); build the model "
                         "in code and use mlpcore.load_state_into(model, path)")
    try:
        dtype = np.dtype(meta.get("dtype", "float32"))
    except TypeError:
        raise ValueError(f"{source}: corrupt dtype metadata {meta.get('dtype')!r}") from None
    try:
        model = registry.build(arch, dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: cannot rebuild the model from its architecture: {e}") from None
    _copy_weights(model, tensors, source)
    return model.to(device) if device != "cpu" else model


def _copy_weights(model: Module, tensors: dict, source: str) -> None:
    """Copy every tensor into the parameter (or buffer) of the same name; names and shapes must match."""
    params = dict(model.named_parameters())
    buffers = {name: (owner, local, value) for name, owner, local, value in model._buffer_owners()}
    stored = {k: v for k, v in tensors.items() if not k.startswith("__")}
    missing = [k for k in list(params) + list(buffers) if k not in stored]
    unexpected = [k for k in stored if k not in params and k not in buffers]
    if missing or unexpected:
        raise ValueError(f"{source}: the file's tensors do not match the model: missing {missing or 'none'}, "
                         f"unexpected {unexpected or 'none'}")
    for name, p in params.items():
        a = stored[name]
        if tuple(a.shape) != p.shape:
            raise ValueError(f"{source}: tensor {name!r} has shape {tuple(a.shape)} in the file but {p.shape} "
                             "in the model")
        if a.dtype.kind != "f":
            raise ValueError(f"{source}: tensor {name!r} has dtype {a.dtype}; expected float32 or float64")
    checked = {}
    for name, (_, _, value) in buffers.items():
        try:
            checked[name] = check_buffer(stored[name], value, f"{source}: tensor {name!r}")
        except TypeError as e:
            raise ValueError(str(e)) from None
    for name, (owner, local, _) in buffers.items():
        owner._set_buffer(local, checked[name])
    for name, p in params.items():
        a = stored[name]
        if not np.all(np.isfinite(a)):
            # the Parameter setter refuses NaN/Inf; a checkpoint saved with allow_nonfinite loads as is
            with np.errstate(over="ignore"):
                p._write(False, np.ascontiguousarray(a, dtype=p.dtype))
        else:
            p.data = a


def load_bytes(data: bytes, device: str = "cpu") -> Module:
    """The model stored in checkpoint bytes (from :func:`save_bytes`)."""
    tensors, meta = _decode(bytes(data), "checkpoint bytes")
    return _model_from(tensors, meta, "checkpoint bytes", device)


def load_checkpoint_bytes(data: bytes, device: str = "cpu", model: Optional[Module] = None) -> dict:
    """As :func:`load_checkpoint`, from bytes."""
    return _checkpoint(bytes(data), "checkpoint bytes", device, model)


def _restore_dropout(model: Module, meta: dict, source: str) -> None:
    """Set the RNG state (seed, counter) of each Dropout of ``model`` to the one saved at the same
    module path, so training continues with the masks an uninterrupted run would draw."""
    saved = _json_field(meta, "dropout", source)
    if not isinstance(saved, dict):
        return
    for path, m in model.named_modules():
        st = saved.get(path)
        if isinstance(m, Dropout) and isinstance(st, list) and len(st) == 2:
            try:
                seed, counter = int(st[0]), int(st[1])
            except (TypeError, ValueError):
                seed = counter = -1
            if not (0 <= seed < 2**64 and 0 <= counter < 2**64):
                raise ValueError(f"{source}: corrupt 'dropout' metadata at {path!r}: {st!r}")
            m._state.seed, m._state.counter = seed, counter


def _checkpoint(data: bytes, source: str, device: str, model: Optional[Module] = None) -> dict:
    tensors, meta = _decode(data, source)
    opt = _json_field(meta, "optimizer", source)
    if opt is not None:
        if _OPT_STATE not in tensors:
            raise ValueError(f"{source}: optimizer metadata present but no '{_OPT_STATE}' tensor")
        opt["state"] = tensors[_OPT_STATE]
    epoch = meta.get("epoch")
    if model is not None:
        _check_model(model)
        _copy_weights(model, tensors, source)
        _restore_dropout(model, meta, source)
    return {
        "model": _model_from(tensors, meta, source, device) if model is None else model,
        "optimizer_state": opt,
        "epoch": int(epoch) if epoch is not None else None,
        "extra": _json_field(meta, "extra", source),
    }


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------

def save(model: Module, path: PathLike, optimizer=None, epoch: Optional[int] = None, extra: Optional[dict] = None,
         allow_nonfinite: bool = False) -> None:
    """Save ``model`` to a safetensors checkpoint at ``path`` (atomically; see the module docs).

    optimizer: its state (momentum / moments, step count) is stored for resuming.
    epoch: the number of epochs completed. extra: any JSON-serialisable dict (data scaling,
    class names, ...). NaN/Inf weights raise ValueError unless ``allow_nonfinite``.
    """
    atomic_write(path, save_bytes(model, optimizer=optimizer, epoch=epoch, extra=extra,
                                  allow_nonfinite=allow_nonfinite))


def _read(path: PathLike) -> bytes:
    with open(os.fspath(path), "rb") as f:
        return f.read()


def load(path: PathLike, device: str = "cpu") -> Module:
    """The model saved at ``path``, rebuilt from its architecture, on ``device``."""
    return _model_from(*_decode(_read(path), os.fspath(path)), os.fspath(path), device)


def load_checkpoint(path: PathLike, device: str = "cpu", model: Optional[Module] = None) -> dict:
    """Everything saved at ``path``: ``{"model", "optimizer_state", "epoch", "extra"}``.

    model: when given, the weights are loaded into it (as :func:`load_state_into`; any model,
    custom Python modules included), each of its Dropouts gets the RNG state saved for the
    module at the same path, and it is returned as ``"model"``; otherwise a new model is
    rebuilt from the recorded architecture on ``device``.

    ``optimizer_state`` is ``None`` or ``{"type", "hyper", "step", "state"}`` for
    ``opt.load_state_dict(...)`` on an optimizer of that type built over the loaded model's
    parameters; ``epoch`` and ``extra`` are ``None`` when not saved.
    """
    return _checkpoint(_read(path), os.fspath(path), device, model)


def load_state_into(model: Module, path: PathLike) -> Module:
    """Copy the weights saved at ``path`` into the existing ``model`` (in place; returns it).

    Works for any model, custom Python modules included, and for any safetensors file whose
    tensor names are the model's ``named_parameters()`` and ``named_buffers()`` names (one written by PyTorch's
    safetensors for the same architecture, say). A different architecture raises ValueError
    naming the missing / unexpected tensors or the tensor whose shape differs.
    """
    _check_model(model)
    source = os.fspath(path)
    data = _read(path)
    if len(data) < 8:
        raise ValueError(f"{source}: not a checkpoint: {len(data)} bytes is too short (truncated or empty file)")
    try:
        tensors = _safetensors_numpy().load(data)
    except Exception as e:
        raise ValueError(f"{source}: not a valid safetensors file ({e})") from None
    _copy_weights(model, tensors, source)
    return model
