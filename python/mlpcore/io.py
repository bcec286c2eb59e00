"""Checkpoints (safetensors) and PyTorch interop.

A checkpoint is one safetensors file:

- tensors: every parameter under its PyTorch-style name from ``model.named_parameters()``
  (``0.weight`` (out, in), ``0.bias`` (out,)), in the model's dtype; with an optimizer, its flat
  state under ``__optimizer__.state``;
- ``__metadata__`` (string -> string, as safetensors requires): ``format = "mlpcore"``,
  ``format_version``, ``mlpcore_version``, ``dtype``, ``architecture`` (JSON: module types and
  constructor arguments, recursively; ``null`` for a model with a custom Python module, whose
  weights still load with :func:`load_state_into`; ``architecture_note`` then says why), and optionally ``optimizer`` (JSON: type,
  hyper-parameters, step), ``epoch`` and ``extra`` (JSON); ``dropout`` (JSON: module path ->
  [seed, counter] as strings, for every Dropout, custom models included) when the model has one.

Writes are atomic: the bytes go to a temporary file in the target's directory, which is flushed,
fsync'ed and renamed over the target with ``os.replace``; then the directory is fsync'ed. A crash
or an error in the middle of a save leaves the previous checkpoint as it was.

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
import tempfile
from typing import Any, Optional, Union

import numpy as np

from . import nn
from ._validate import is_int
from .nn import Module

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "mlpcore"
FORMAT_VERSION = "1"
_OPT_STATE = "__optimizer__.state"
_CHUNK = 1 << 20  # bytes per write call

_ACTIVATIONS = {
    "Identity": nn.Identity, "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "GELU": nn.GELU,
    "SiLU": nn.SiLU, "Softmax": nn.Softmax,
}


def _safetensors_numpy():
    try:
        import safetensors.numpy as stn
    except ImportError as e:  # a core dependency; only a broken environment lands here
        raise ImportError("mlpcore checkpoints need the 'safetensors' package: pip install safetensors") from e
    return stn


# ----------------------------------------------------------------------------------------------
# architecture <-> JSON
# ----------------------------------------------------------------------------------------------

class _Unsupported(Exception):
    pass


def _module_names(model: Module) -> dict:
    """id(module) -> dotted path ('' for the root, '0', '2.block.1', ...)."""
    names = {}

    def walk(m: Module, prefix: str) -> None:
        names.setdefault(id(m), prefix)
        for name, c in m._named_children():
            walk(c, f"{prefix}.{name}" if prefix else name)

    walk(model, "")
    return names


def _paths(model: Module) -> dict:
    """dotted path ('' for the root, '0', '2.block.1', ...) -> module, every module object once."""
    out, seen = {}, set()

    def walk(m: Module, prefix: str) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        out[prefix] = m
        for name, c in m._named_children():
            walk(c, f"{prefix}.{name}" if prefix else name)

    walk(model, "")
    return out


def _describe(m: Module, names: dict, done: dict) -> dict:
    """The JSON-able constructor description of ``m`` (recursive). ``done`` maps id -> module for
    the modules already described (construction order), so a TiedLinear can name its source."""
    t = type(m)
    if id(m) in done:
        raise _Unsupported(f"{t.__name__} used twice in the model (shared module)")
    if t is nn.Sequential:
        d = {"type": "Sequential", "layers": [_describe(c, names, done) for c in m.layers]}
    elif t is nn.TiedLinear:
        src = next((c for c in done.values() if type(c) is nn.Linear and c.weight is m.weight), None)
        if src is None:
            raise _Unsupported("TiedLinear whose source Linear is not an earlier layer of the model")
        d = {"type": "TiedLinear", "source": names[id(src)], "transpose": m.transposed, "bias": m.bias is not None}
    elif t is nn.Linear:
        d = {"type": "Linear", "in_features": m.in_features, "out_features": m.out_features,
             "bias": m.bias is not None, "init": m.init}
    elif t.__name__ in _ACTIVATIONS and _ACTIVATIONS[t.__name__] is t:
        d = {"type": t.__name__}
    elif t is nn.LeakyReLU:
        d = {"type": "LeakyReLU", "negative_slope": m.negative_slope}
    elif t is nn.ELU:
        d = {"type": "ELU", "alpha": m.alpha}
    elif t is nn.Dropout:
        # seed and counter: a resumed run draws the same masks as an uninterrupted one
        d = {"type": "Dropout", "p": m.p, "seed": str(m._state.seed), "counter": str(m._state.counter)}
    elif t is nn.Maxout:
        d = {"type": "Maxout", "in_features": m.in_features, "out_features": m.out_features, "pieces": m.pieces,
             "bias": m.linear.bias is not None, "init": m.linear.init}
    elif t is nn.Residual:
        d = {"type": "Residual", "block": _describe(m.block, names, done)}
    else:
        raise _Unsupported(f"custom module {t.__name__}")
    done[id(m)] = m
    return d


def _build(d: Any, dtype: np.dtype, built: dict, path: str) -> Module:
    """Construct a module from its description; ``built`` maps paths to modules made so far."""
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError(f"architecture at {path or 'root'!r}: expected an object with a 'type', got {d!r}")
    t = d["type"]
    try:
        if t == "Sequential":
            layers = [_build(c, dtype, built, f"{path}.{i}" if path else str(i)) for i, c in enumerate(d["layers"])]
            m = nn.Sequential(*layers)
        elif t == "Linear":
            # seed=0: the initial values are overwritten by the stored weights
            m = nn.Linear(d["in_features"], d["out_features"], bias=d["bias"], init=d.get("init", "he_uniform"),
                          dtype=dtype, seed=0)
        elif t == "TiedLinear":
            src = built.get(d["source"])
            if not isinstance(src, nn.Linear):
                raise ValueError(f"TiedLinear source {d['source']!r} is not an earlier Linear")
            m = nn.TiedLinear(src, transpose=d["transpose"], bias=d["bias"])
        elif t in _ACTIVATIONS:
            m = _ACTIVATIONS[t]()
        elif t == "LeakyReLU":
            m = nn.LeakyReLU(d["negative_slope"])
        elif t == "ELU":
            m = nn.ELU(d["alpha"])
        elif t == "Dropout":
            m = nn.Dropout(d["p"], seed=int(d["seed"]))
            m._state.counter = int(d.get("counter", 0))
        elif t == "Maxout":
            m = nn.Maxout(d["in_features"], d["out_features"], d["pieces"], bias=d["bias"],
                          init=d.get("init", "xavier_uniform"), dtype=dtype, seed=0)
        elif t == "Residual":
            m = nn.Residual(_build(d["block"], dtype, built, f"{path}.block" if path else "block"))
        else:
            raise ValueError(f"unknown module type {t!r}")
    except KeyError as e:
        raise ValueError(f"architecture at {path or 'root'!r}: {t} lacks the field {e}") from None
    built[path] = m
    return m


def _architecture(model: Module) -> tuple:
    """(description or None, why it could not be described or None)."""
    try:
        return _describe(model, _module_names(model), {}), None
    except _Unsupported as e:
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
        a = np.ascontiguousarray(p.data)  # a copy on cuda, a view on cpu: safetensors copies it out
        if not allow_nonfinite and not np.all(np.isfinite(a)):
            raise ValueError(f"model: parameter {name!r} contains NaN or Inf; refusing to save it "
                             "(pass allow_nonfinite=True to save anyway)")
        tensors[name] = a
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
             for path, m in _paths(model).items() if isinstance(m, nn.Dropout)}
    if drops:
        meta["dropout"] = json.dumps(drops)
    if optimizer is not None:
        from .optim import Optimizer
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
    """The package version ("unknown" while the package is only half imported)."""
    try:
        from . import __version__
        return __version__
    except ImportError:
        return "unknown"


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
        model = _build(arch, dtype, {}, "")
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: cannot rebuild the model from its architecture: {e}") from None
    _copy_weights(model, tensors, source)
    return model.to(device) if device != "cpu" else model


def _copy_weights(model: Module, tensors: dict, source: str) -> None:
    """Copy every tensor into the parameter of the same name; names and shapes must match."""
    params = dict(model.named_parameters())
    stored = {k: v for k, v in tensors.items() if not k.startswith("__")}
    missing = [k for k in params if k not in stored]
    unexpected = [k for k in stored if k not in params]
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
    for name, p in params.items():
        a = stored[name]
        if not np.all(np.isfinite(a)):
            # the Parameter setter refuses NaN/Inf; a checkpoint saved with allow_nonfinite loads as is
            p._arena.write(False, p._offset, np.ascontiguousarray(a, dtype=p.dtype).ravel())
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
    for path, m in _paths(model).items():
        st = saved.get(path)
        if isinstance(m, nn.Dropout) and isinstance(st, list) and len(st) == 2:
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

def _write_chunks(f, data: bytes) -> None:
    """Write ``data`` to the open file ``f`` (a separate function so tests can fail a save midway)."""
    view = memoryview(data)
    for i in range(0, len(view), _CHUNK):
        f.write(view[i:i + _CHUNK])


def _file_mode(path: str) -> int:
    """The permission bits for ``path``: those of the file being replaced, else 0o666 & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    mask = os.umask(0)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, flush, fsync,
    ``os.replace``, fsync of the directory. On any error the temp file is removed and ``path``
    is left as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would (or the replaced file's)
        os.chmod(tmp, _file_mode(path))
        with os.fdopen(fd, "wb") as f:
            _write_chunks(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if os.name == "posix":  # make the rename itself durable; directories cannot be opened on Windows
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


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
    tensor names are the model's ``named_parameters()`` names (one written by PyTorch's
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


# ----------------------------------------------------------------------------------------------
# PyTorch interop
# ----------------------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("PyTorch interop needs torch: pip install torch") from e
    return torch


def from_torch(module) -> Module:
    """A mlpcore model with the same structure and weights as a ``torch.nn`` module.

    Supported: ``nn.Sequential`` (nested too) of Linear, ReLU, LeakyReLU, Sigmoid, Tanh, ELU,
    GELU (exact), SiLU, Softmax (last dim), Identity and Dropout, or one such layer. Weights are
    copied (float32 or float64, on the CPU); anything else raises TypeError naming the layer.
    """
    torch = _torch()
    tnn = torch.nn
    if isinstance(module, tnn.Sequential):
        layers = [from_torch(m) for m in module]
        if not layers:
            raise ValueError("module: an empty torch.nn.Sequential has nothing to convert")
        out = nn.Sequential(*layers)
        return out.train(module.training)
    t = type(module)
    if t is tnn.Linear:
        w = module.weight.detach()
        if w.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"Linear: expected float32 or float64 weights, got {w.dtype}")
        dtype = np.float32 if w.dtype == torch.float32 else np.float64
        m = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None, dtype=dtype, seed=0)
        m.weight.data = w.cpu().numpy()
        if module.bias is not None:
            m.bias.data = module.bias.detach().cpu().numpy()
        return m
    simple = {tnn.ReLU: nn.ReLU, tnn.Sigmoid: nn.Sigmoid, tnn.Tanh: nn.Tanh, tnn.SiLU: nn.SiLU,
              tnn.Identity: nn.Identity}
    if t in simple:
        return simple[t]()
    if t is tnn.LeakyReLU:
        return nn.LeakyReLU(module.negative_slope)
    if t is tnn.ELU:
        return nn.ELU(module.alpha)
    if t is tnn.GELU:
        if module.approximate != "none":
            raise TypeError(f"GELU(approximate={module.approximate!r}) is not supported; mlpcore's GELU is the "
                            "exact erf form (approximate='none')")
        return nn.GELU()
    if t is tnn.Softmax:
        if module.dim not in (-1, 1):
            raise TypeError(f"Softmax(dim={module.dim}) is not supported; mlpcore's Softmax is over the last dim")
        return nn.Softmax()
    if t is tnn.Dropout:
        return nn.Dropout(module.p)
    raise TypeError(f"from_torch: unsupported layer {t.__name__} ({module}); supported: Sequential, Linear, ReLU, "
                    "LeakyReLU, Sigmoid, Tanh, ELU, GELU, SiLU, Softmax, Identity, Dropout")


def to_torch(model: Module):
    """A ``torch.nn`` module with the same structure and weights as ``model`` (on the CPU, same
    dtype, same train/eval mode). Sequential, Linear and the activations and Dropout map one to
    one; TiedLinear, Maxout, Residual and custom modules have no torch.nn twin: TypeError."""
    torch = _torch()
    tnn = torch.nn
    _check_model(model)
    t = type(model)
    if t is nn.Sequential:
        out = tnn.Sequential(*[to_torch(m) for m in model.layers])
    elif t is nn.Linear:
        dtype = torch.float32 if model.dtype == np.float32 else torch.float64
        out = tnn.Linear(model.in_features, model.out_features, bias=model.bias is not None, dtype=dtype)
        with torch.no_grad():
            out.weight.copy_(torch.from_numpy(np.array(model.weight.data)))
            if model.bias is not None:
                out.bias.copy_(torch.from_numpy(np.array(model.bias.data)))
    elif t is nn.LeakyReLU:
        out = tnn.LeakyReLU(model.negative_slope)
    elif t is nn.ELU:
        out = tnn.ELU(model.alpha)
    elif t is nn.Softmax:
        out = tnn.Softmax(dim=-1)
    elif t is nn.Dropout:
        out = tnn.Dropout(model.p)
    elif t in (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Identity):
        out = getattr(tnn, t.__name__)()
    else:
        raise TypeError(f"to_torch: {t.__name__} has no torch.nn equivalent; supported: Sequential, Linear, "
                        "ReLU, LeakyReLU, Sigmoid, Tanh, ELU, GELU, SiLU, Softmax, Identity, Dropout")
    return out.train(model.training)
