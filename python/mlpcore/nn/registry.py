"""The layer registry: one entry per built-in layer class says everything the rest of the package
needs to know about it.

A :class:`Layer` entry, registered once next to the layer's class (``register(Layer(...))`` at the
end of its file), gives

- ``lower``: the ops of the compiled C++ network (``None``: not lowerable, the model then runs
  module by module);
- ``describe`` / ``build``: its JSON description in a checkpoint and how to rebuild it;
- ``features``: the widths it expects and produces (chaining checks, ``summary()``);
- ``repr``: the arguments ``repr(module)`` shows;
- ``torch``: its ``torch.nn`` twin both ways (``to_torch`` / ``from_torch``);
- ``onnx``: its ONNX export, the nodes of its eval-mode forward (``mlpcore.io.onnx``).

Adding a layer to the Python side is a new file with the class and its entry, plus its export in
``mlpcore.nn`` and ``mlpcore``: checkpoints, PyTorch interop, ONNX export, lowering,
``summary()`` and ``repr`` all read the entry. Nothing here imports a layer; layers import this module.

Lookup: a class's entry is its own, or, for a subclass that keeps its registered base's
``forward`` and ``backward`` (``class MyNet(mc.Sequential)`` building its layers in
``__init__``), its base's for lowering, widths and repr. Checkpoints and PyTorch twins need the
exact class (a subclass may take other constructor arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .. import _core


@dataclass(frozen=True)
class TorchTwin:
    """The ``torch.nn`` twin of a layer. ``names``: the torch.nn class names that convert to it;
    ``to_torch(module, torch, convert)`` returns the torch module (``convert(child)`` converts a
    child); ``from_torch(tmodule, torch, convert)`` returns the mlpcore module or raises TypeError."""

    names: tuple
    to_torch: Callable
    from_torch: Callable


@dataclass(frozen=True)
class Layer:
    """Everything about one layer class (see the module docs). Signatures:

    - ``describe(m, ctx: DescribeContext) -> dict``: JSON-able fields (``"type"`` is added);
      raise :class:`Unsupported` when ``m`` cannot be described;
    - ``build(d: dict, ctx: BuildContext, path: str) -> Module``: the module from ``describe``'s
      fields (a missing field is a KeyError, reported as such); ``ctx.build(child, ctx.child(path,
      name))`` builds a child;
    - ``lower(m, ctx: LowerContext, base: int) -> list[OpSpec] | None``: the ops, ``base`` being
      the index of the value ``m`` reads (values are numbered 0 = network input);
    - ``features(m, width: int | None) -> (expected_in | None, out | None)``: default keeps the width;
    - ``repr(m) -> str``: what ``repr`` shows inside ``Name(...)`` (default: nothing);
    - ``onnx(m, ctx: mlpcore.io.onnx.OnnxContext, x: str) -> str``: write the nodes of ``m``'s
      eval-mode forward reading the graph value named ``x`` through ``ctx`` (``ctx.node(op, inputs,
      **attributes)``, ``ctx.param(p)``, ``ctx.constant(v)``, ``ctx.export(child, x, name)``,
      ``ctx.opset``, ``ctx.dtype``, ``ctx.native(op)``, ``ctx.erf(x)``) and return the name of the
      value it produces (``x`` itself for an identity). Nothing to import: the layer file stays free
      of onnx. None: the layer has no export (export_onnx names it). E.g. a LayerNorm over the last
      axis: ``ctx.node("LayerNormalization", [x, ctx.param(m.weight), ctx.param(m.bias)], axis=-1,
      epsilon=m.eps)`` from opset 17 (before: ReduceMean / Sub / Mul / Sqrt nodes); a BatchNorm1d
      in eval mode: ``BatchNormalization`` with its running statistics as ``ctx.constant(buffer)``.
    """

    cls: type
    describe: Callable[[Any, "DescribeContext"], dict]
    build: Callable[[dict, "BuildContext", str], Any]
    lower: Optional[Callable] = None
    features: Optional[Callable] = None
    repr: Optional[Callable] = None
    torch: Optional[TorchTwin] = None
    onnx: Optional[Callable] = None

    @property
    def name(self) -> str:
        return self.cls.__name__


_EXACT: dict = {}   # class -> Layer
_BY_NAME: dict = {}  # checkpoint type name -> Layer
_RESOLVED: dict = {}  # any class seen -> Layer or None (subclasses resolved once)


def register(layer: Layer) -> Layer:
    """Register ``layer`` (one entry per class; registering a class again replaces its entry)."""
    _EXACT[layer.cls] = layer
    _BY_NAME[layer.name] = layer
    _RESOLVED.clear()
    return layer


def entry(cls: type) -> Optional[Layer]:
    """The entry that computes like ``cls`` (its own, or a registered base's when ``cls`` keeps that
    base's forward and backward), or None for a custom module."""
    try:
        return _RESOLVED[cls]
    except KeyError:
        pass
    found = _EXACT.get(cls)
    if found is None:
        for base in cls.__mro__[1:]:
            e = _EXACT.get(base)
            if e is not None:
                if cls.forward is base.forward and cls.backward is base.backward:
                    found = e
                break
    _RESOLVED[cls] = found
    return found


def exact(cls: type) -> Optional[Layer]:
    return _EXACT.get(cls)


def names() -> list:
    return sorted(_BY_NAME)


def lookup(name: str) -> Layer:
    """The entry named ``name``, ignoring case and underscores ("leaky_relu" is LeakyReLU): how a
    command line or a config file names a layer. KeyError naming the choices otherwise."""
    key = str(name).replace("_", "").lower()
    for n, e in _BY_NAME.items():
        if n.lower() == key:
            return e
    raise KeyError(f"unknown layer {name!r}; expected one of {', '.join(names())}")


def passthrough(m, width: Optional[int]) -> tuple:
    """``features`` of a layer that keeps the width (activations, dropout)."""
    return None, width


# ------------------------------------------------------------------------------------------------
# lowering
# ------------------------------------------------------------------------------------------------

class LowerContext:
    """Collects the arenas the ops index (``OpSpec.arena``) while a model is lowered."""

    def __init__(self):
        self.arenas: list = []
        self._index: dict = {}

    def locate(self, p) -> tuple:
        """(arena index, element offset) of Parameter ``p``."""
        a = p._arena
        i = self._index.get(id(a))
        if i is None:
            i = self._index[id(a)] = len(self.arenas)
            self.arenas.append(a)
        return i, p._offset

    def lower(self, m, base: int) -> Optional[list]:
        """The ops of ``m`` reading value ``base``, or None if ``m`` (or a part of it) is not lowerable."""
        e = entry(type(m))
        if e is None or e.lower is None:
            return None
        return e.lower(m, self, base)


def op(kind, **fields) -> "_core.OpSpec":
    """An OpSpec of ``kind`` with ``fields`` set."""
    s = _core.OpSpec()
    s.kind = kind
    for k, v in fields.items():
        setattr(s, k, v)
    return s


# ------------------------------------------------------------------------------------------------
# checkpoint descriptions
# ------------------------------------------------------------------------------------------------

class Unsupported(Exception):
    """A model that cannot be described (a custom module, a module used twice, ...)."""


class DescribeContext:
    """State of one description walk: module paths, and the modules described so far (in order),
    so that a layer can refer to an earlier one (TiedLinear names its source)."""

    def __init__(self, root):
        self.paths: dict = {}
        self.done: dict = {}

        def walk(m, prefix: str) -> None:
            self.paths.setdefault(id(m), prefix)
            for name, c in m._named_children():
                walk(c, f"{prefix}.{name}" if prefix else name)

        walk(root, "")

    def describe(self, m) -> dict:
        e = exact(type(m))
        if e is None:
            raise Unsupported(f"custom module {type(m).__name__}")
        if id(m) in self.done:
            raise Unsupported(f"{type(m).__name__} used twice in the model (shared module)")
        d = {"type": e.name, **e.describe(m, self)}
        self.done[id(m)] = m
        return d

    def path_of(self, m) -> str:
        return self.paths[id(m)]


class BuildContext:
    """State of one rebuild: the dtype, and the modules built so far by path."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.built: dict = {}

    def build(self, d: Any, path: str):
        if not isinstance(d, dict) or "type" not in d:
            raise ValueError(f"architecture at {path or 'root'!r}: expected an object with a 'type', got {d!r}")
        e = _BY_NAME.get(d["type"])
        if e is None:
            raise ValueError(f"unknown module type {d['type']!r}")
        try:
            m = e.build(d, self, path)
        except KeyError as err:
            raise ValueError(f"architecture at {path or 'root'!r}: {d['type']} lacks the field {err}") from None
        self.built[path] = m
        return m

    @staticmethod
    def child(path: str, name: str) -> str:
        return f"{path}.{name}" if path else name


def describe(model) -> dict:
    """The JSON-able description of ``model`` (raises Unsupported)."""
    return DescribeContext(model).describe(model)


def build(description: Any, dtype) -> Any:
    """The model described by ``description`` (ValueError / TypeError when it is not valid)."""
    return BuildContext(dtype).build(description, "")


# ------------------------------------------------------------------------------------------------
# PyTorch twins
# ------------------------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("PyTorch interop needs torch: pip install torch") from e
    return torch


def _twin_names() -> str:
    return ", ".join(e.name for e in _EXACT.values() if e.torch is not None)


def _copy_frozen(m, t, to_torch: bool) -> None:
    """Carry each own parameter's ``requires_grad`` from ``m`` to its torch twin ``t`` (or back):
    the parameters have the same names on both sides (the state_dict relies on it)."""
    for name, p in m._own_parameters():
        tp = getattr(t, name, None)
        if tp is None:
            continue
        if to_torch:
            tp.requires_grad_(p.requires_grad)
        else:
            p.requires_grad = bool(tp.requires_grad)


def to_torch(model):
    """The ``torch.nn`` module with the same structure and weights as ``model`` (CPU, same dtype,
    same train/eval mode, the same frozen parameters); TypeError for a layer without a torch.nn twin."""
    torch = _torch()

    def convert(m):
        e = exact(type(m))
        if e is None or e.torch is None:
            raise TypeError(f"to_torch: {type(m).__name__} has no torch.nn equivalent; "
                            f"supported: {_twin_names()}")
        t = e.torch.to_torch(m, torch, convert).train(m.training)
        _copy_frozen(m, t, to_torch=True)
        return t

    return convert(model)


def from_torch(module):
    """The mlpcore model with the same structure, weights, train/eval mode and frozen parameters
    (``requires_grad``) as a ``torch.nn`` module."""
    torch = _torch()
    table = {}
    for e in _EXACT.values():
        for n in e.torch.names if e.torch is not None else ():
            cls = getattr(torch.nn, n, None)  # None: a class this torch version does not have
            if cls is not None:
                table[cls] = e

    def convert(t):
        e = table.get(type(t))
        if e is None:
            supported = ", ".join(sorted(n for x in _EXACT.values() if x.torch for n in x.torch.names))
            raise TypeError(f"from_torch: unsupported layer {type(t).__name__} ({t}); supported: {supported}")
        m = e.torch.from_torch(t, torch, convert).train(t.training)
        _copy_frozen(m, t, to_torch=False)
        return m

    return convert(module)


def torch_dtype(torch, dtype: np.dtype):
    return torch.float32 if np.dtype(dtype) == np.float32 else torch.float64


def numpy_dtype(torch, t, what: str) -> type:
    """float32 / float64 for a torch tensor's dtype; TypeError otherwise."""
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{what}: expected float32 or float64 weights, got {t.dtype}")
    return np.float32 if t.dtype == torch.float32 else np.float64
