"""``Module``: parameters plus ``forward`` / ``backward``, the base of every layer.

Every module has ``forward(x)`` (numpy in, numpy out) and ``backward(grad_output)`` (returns
d loss / d x and accumulates parameter gradients into ``.grad``), both running C++ kernels.
Subclass it for a custom layer written in numpy; check its ``backward`` with
:func:`mlpcore.gradcheck`.

What a module knows without walking its tree (no tree walks on a hot path):

- a **version**, bumped whenever something a compiled network bakes in changes in the module or
  below it: a parameter moved to another arena, a lowered hyper-parameter (``Dropout.p``,
  ``LeakyReLU.negative_slope``, ``ELU.alpha``), a child assigned. Containers are told through
  weak references to their parents, set when they adopt a child. Caches (the parameter list,
  device, dtype, a Sequential's compiled network) are keyed by it: one int compare when nothing
  changed, and nothing outside the model ever invalidates them.
- whether its whole subtree is in train or in eval mode (``train()`` is one compare when nothing
  changes; a child switched on its own tells its ancestors).

Parameters are fixed objects (an arena, a compiled network and optimizers point into them):
write new values with ``p.data = a`` or ``p.data[...] = a``; assigning another object to
``layer.weight`` raises TypeError. ``backward`` before ``forward`` raises RuntimeError.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict, namedtuple
from typing import Iterator, Optional

import numpy as np

from .. import _core
from . import registry
from .grad_mode import SKIPPED, no_grad_error
from .parameter import Parameter, Stored, arenas_of, gather, zero_grads

_MIXED = "mixed"  # Module._uniform: the subtree mixes train and eval mode
# Per-instance state that is rebuilt, not pickled: parents (weak references), caches keyed by the
# version, a Sequential's compiled network and the record of its last forward.
_TRANSIENT = ("_parents", "_layout", "_net", "_path")

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def adopt(parent: "Module", child: "Module", bump: bool = True) -> None:
    """Record ``parent`` as a container of ``child`` (weakly), so that child changes reach it."""
    ps = child.__dict__.get("_parents")
    if ps is None:
        ps = child.__dict__["_parents"] = weakref.WeakSet()
    ps.add(parent)
    if bump:
        parent._changed()
        _mode_changed_above(parent, None)


def _mode_changed_above(m: "Module", mode: Optional[bool]) -> None:
    """``m``'s subtree now mixes in ``mode`` (None: unknown): every ancestor whose cached uniform
    mode may no longer hold forgets it. An ancestor already uniform in ``mode`` stays valid, and
    so do its own ancestors."""
    stack = list(m.__dict__.get("_parents") or ())
    if mode is None:
        m.__dict__.pop("_uniform", None)
    seen = set()
    while stack:
        a = stack.pop()
        if id(a) in seen or (mode is not None and a.__dict__.get("_uniform") is mode):
            continue
        seen.add(id(a))
        a.__dict__.pop("_uniform", None)
        stack.extend(a.__dict__.get("_parents") or ())


class Module:
    """Base class: parameters plus ``forward``/``backward``. Subclass it for a custom layer
    written in numpy; check its ``backward`` with :func:`mlpcore.gradcheck`."""

    training: bool = True
    _version: int = 0
    # Custom modules that keep the width of their input (an element-wise op) may say so: Sequential
    # then checks the chaining across them. Built-in layers declare widths in their registry entry.
    _passthrough = False
    _chains_children = False  # Sequential: each child reads the previous one's output (for summary)

    # ----- attributes: parameters are fixed, children are adopted, modes propagate -----
    def __setattr__(self, name: str, value) -> None:
        if name[0] != "_":
            current = getattr(self, name, None)
            if isinstance(current, Parameter) and value is not current:
                got = (f"{type(value).__name__} of shape {np.shape(value)}" if hasattr(value, "shape")
                       else type(value).__name__)
                raise TypeError(
                    f"{type(self).__name__}.{name}: a Parameter cannot be replaced (expected the existing "
                    f"Parameter of shape {current.shape}, got {got}); write new values into it with "
                    f"`.{name}.data = a` (shape {current.shape}) or `.{name}.data[...] = a`")
            if name == "training":
                object.__setattr__(self, name, bool(value))
                _mode_changed_above(self, None)
                return
        object.__setattr__(self, name, value)
        if isinstance(value, Stored):  # a Parameter or a Buffer
            value._users.add(self)
            self._changed()
        elif isinstance(value, Module):
            adopt(self, value)

    # ----- versions -----
    def _changed(self) -> None:
        """Something a compiled network bakes in changed here: bump this module and its ancestors."""
        stack, seen = [self], set()
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            d = m.__dict__
            d["_version"] = m._version + 1
            stack.extend(d.get("_parents") or ())

    def _param_moved(self) -> None:  # called on its holders when a Parameter / Buffer moves or is (un)frozen
        self._changed()

    # ----- structure -----
    def _own_parameters(self) -> list:
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Parameter)]

    def _named_children(self) -> list:
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def _own_stored(self) -> list:
        """This module's Parameters and Buffers (what moves with it)."""
        return [v for v in vars(self).values() if isinstance(v, Stored)]

    def _own_buffers(self) -> list:
        """(name, array) of this module's non-parameter state under PyTorch's names and dtypes,
        as copies: what ``state_dict``, checkpoints and ``to_torch`` save. A module with buffers
        also overrides ``_set_buffer``."""
        return []

    def _set_buffer(self, name: str, value: np.ndarray) -> None:
        """Write ``value`` (checked: finite, the shape ``_own_buffers`` gives for ``name``) into
        buffer ``name`` (``load_state_dict``, checkpoints, resume)."""
        raise KeyError(name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple]:
        """``(name, Parameter)`` pairs, PyTorch-style names (``0.weight``); shared (tied)
        parameters are listed once."""
        seen = set()
        for name, p in self._named_parameters_all(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters_all(self, prefix: str):
        for k, p in self._own_parameters():
            yield prefix + k, p
        for name, child in self._named_children():
            yield from child._named_parameters_all(f"{prefix}{name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple]:
        """``(name, array)`` of the non-parameter state (BatchNorm's ``running_mean``,
        ``running_var``, ``num_batches_tracked``), PyTorch's names, as copies."""
        for name, _, _, value in self._buffer_owners(prefix):
            yield name, value

    def _buffer_owners(self, prefix: str = "") -> Iterator[tuple]:
        """(full name, owning module, its own name, value) of every buffer in the tree."""
        for k, b in self._own_buffers():
            yield prefix + k, self, k, b
        for name, child in self._named_children():
            yield from child._buffer_owners(f"{prefix}{name}.")

    def named_modules(self, prefix: str = "") -> Iterator[tuple]:
        """``(path, module)`` of this module ('') and every descendant, each object once."""
        seen = set()

        def walk(m, path):
            if id(m) in seen:
                return
            seen.add(id(m))
            yield path, m
            for name, c in m._named_children():
                yield from walk(c, f"{path}.{name}" if path else name)

        yield from walk(self, prefix)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def _layout_info(self) -> tuple:
        """(version, parameters, arenas, device, dtype, stored), recomputed only when the version
        moved; stored: the Parameters and Buffers of the tree (what moves with it)."""
        info = self.__dict__.get("_layout")
        if info is not None and info[0] == self._version:
            return info
        params = [p for _, p in self.named_parameters()]
        seen = {id(p) for p in params}
        stored = list(params)
        for m in self.modules():
            for b in m._own_stored():
                if id(b) not in seen:
                    seen.add(id(b))
                    stored.append(b)
        arenas = arenas_of(stored)
        info = (self._version, params, arenas, arenas[0].device if arenas else "cpu",
                arenas[0].dtype if arenas else np.dtype(np.float32), stored)
        self.__dict__["_layout"] = info
        return info

    def parameters(self) -> list:
        return list(self._layout_info()[1])

    @property
    def dtype(self) -> np.dtype:
        return self._layout_info()[4]

    @property
    def device(self) -> str:
        return self._layout_info()[3]

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero: one fill per arena."""
        zero_grads(self._layout_info()[2])

    def to(self, device: str) -> "Module":
        """Move every parameter (and gradient) to ``device`` ('cpu' or 'cuda'), into one new arena.

        As with PyTorch's ``.to()``, ``.data`` / ``.grad`` arrays taken before the move are views of
        the old device's memory and no longer reach the model; optimizers over the parameters
        follow the move (their state moves with them). A no-op when everything is already there."""
        device = _core._as_device(device)  # the core's device rule; RuntimeError where CUDA is not usable
        _, _, arenas, _, dtype, stored = self._layout_info()
        if any(a.device != device for a in arenas):
            gather(stored, device, dtype)  # buffers (running statistics) move too
        return self

    # ----- train / eval -----
    def train(self, mode: bool = True) -> "Module":
        mode = bool(mode)
        if self.__dict__.get("_uniform") is mode:  # the whole subtree is there already
            return self
        for m in self.modules():
            d = m.__dict__
            d["training"] = mode
            d["_uniform"] = mode
            m._mode_set(mode)
        _mode_changed_above(self, mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def _uniform_mode(self):
        """True / False when this module and all below it are in that mode, else None."""
        u = self.__dict__.get("_uniform")
        if u is None:
            modes = {m.training for m in self.modules()}
            u = self.__dict__["_uniform"] = modes.pop() if len(modes) == 1 else _MIXED
        return None if u is _MIXED else u

    def _mode_set(self, mode: bool) -> None:
        """Hook: ``train(mode)`` reached this module (a Sequential updates its network)."""

    # ----- computation -----
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _forward_modules(self, x: np.ndarray) -> np.ndarray:
        """Forward module by module, never through a compiled network (containers recurse)."""
        return self.forward(x)

    def _backward_modules(self, grad_output: np.ndarray) -> np.ndarray:
        """Backward of a ``_forward_modules`` forward."""
        return self.backward(grad_output)

    def _network(self):
        """The compiled C++ network this module runs through, or None (only Sequential has one)."""
        return None

    def _require_cpu(self) -> None:
        if self.device != "cpu":
            raise RuntimeError(
                f"{type(self).__name__}: the module-by-module path runs on the CPU; on cuda run the model "
                "as a Sequential of built-in modules (model(x), Trainer), which runs the compiled network")

    def _saved(self, name: str):
        v = self.__dict__.get(name)
        if v is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        if v is SKIPPED:
            raise no_grad_error(type(self).__name__)
        return v

    # ----- widths (chaining checks, summary) -----
    def _features(self, width: Optional[int]) -> tuple:
        """(expected input width or None, output width or None) for an input of ``width``."""
        e = registry.entry(type(self))
        if e is not None:
            return (e.features or registry.passthrough)(self, width)
        return (None, width) if self._passthrough else (None, None)

    # ----- description -----
    def extra_repr(self) -> str:
        e = registry.entry(type(self))
        return e.repr(self) if e is not None and e.repr is not None else ""

    def __repr__(self) -> str:
        kids = self._named_children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, c in kids:
            lines.append("  (" + name + "): " + repr(c).replace("\n", "\n  "))
        lines.append(")")
        return "\n".join(lines)

    def summary(self) -> str:
        """A table of the modules (tree order): path, layer, output shape, own parameter count
        (frozen ones marked); then the totals: parameters (how many frozen), and buffers
        (non-parameter state such as BatchNorm's running statistics) when there are any. Widths
        come from the layers' registry entries (``?``: unknown, e.g. after a custom module)."""
        rows = [("path", "layer", "output", "params")]

        def count(m: Module) -> str:
            own = [p for _, p in m._own_parameters()]
            n = sum(p.numel for p in own)
            frozen = sum(p.numel for p in own if not p.requires_grad)
            return f"{n:,}" + ("" if not frozen else " frozen" if frozen == n else f" ({frozen:,} frozen)")

        def walk(m: Module, path: str, width: Optional[int], depth: int) -> Optional[int]:
            fin, out = m._features(width)
            kids = m._named_children()
            own = count(m)
            label = "  " * depth + type(m).__name__ + ("" if kids else f"({m.extra_repr()})")
            rows.append((path or "-", label, "?" if out is None else f"(B, {out})",
                         own if own != "0" or not kids else ""))
            w = (fin if fin is not None else width) if registry.entry(type(m)) is not None else None
            for name, c in kids:
                sub = walk(c, f"{path}.{name}" if path else name, w, depth + 1)
                if m._chains_children:
                    w = sub
            return out

        walk(self, "", None, 0)
        params = self.parameters()
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                 for r in rows]
        rule = "-" * max(len(line) for line in lines)
        lines[1:1] = [rule]
        frozen = sum(p.numel for p in params if not p.requires_grad)
        buffers = [(name, np.size(v)) for name, v in self.named_buffers()]
        lines += [rule]
        if buffers:
            lines.append(f"buffers: {sum(n for _, n in buffers):,} values in {len(buffers)} tensors (not trained)")
        lines.append(f"parameters: {sum(p.numel for p in params):,} in {len(params)} tensors "
                     f"({self.dtype}, {self.device})" + (f", {frozen:,} frozen" if frozen else ""))
        return "\n".join(lines)

    # ----- state -----
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters (and buffers) by PyTorch name, as numpy copies: ``torch_model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in sd.items()})`` loads it into the PyTorch twin."""
        sd: "OrderedDict[str, np.ndarray]" = OrderedDict()
        seen: set = set()

        def walk(m: Module, prefix: str) -> None:  # PyTorch's order: per module, parameters, then buffers
            for k, p in m._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    sd[prefix + k] = p._read()
            for k, b in m._own_buffers():
                sd[prefix + k] = np.array(b, copy=True)
            for name, c in m._named_children():
                walk(c, f"{prefix}{name}.")

        walk(self, "")
        return sd

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict`` (name -> array, e.g. from ``state_dict()`` or a PyTorch model's, as
        numpy) into the parameters and buffers. ValueError naming the missing, unexpected and
        mis-shaped entries (``strict=False`` ignores missing and unexpected ones); nothing is
        written unless everything checks. Returns (missing_keys, unexpected_keys)."""
        if not hasattr(state_dict, "items"):
            raise TypeError("state_dict: expected a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        targets = dict(self.named_parameters())
        buffers = {name: (owner, local, value) for name, owner, local, value in self._buffer_owners()}
        missing = [k for k in list(targets) + list(buffers) if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets and k not in buffers]
        problems, arrays = [], {}
        for k, v in state_dict.items():
            try:
                if k in targets:
                    arrays[k] = targets[k]._checked(v, repr(k))
                elif k in buffers:
                    arrays[k] = check_buffer(v, buffers[k][2], repr(k))
            except (TypeError, ValueError) as e:
                problems.append(str(e))
        if strict and (missing or unexpected):
            problems.insert(0, f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for k, a in arrays.items():
            if k in targets:
                targets[k]._write(False, a)
            else:
                owner, local, _ = buffers[k]
                owner._set_buffer(local, a)
        return IncompatibleKeys(missing, unexpected)

    def to_torch(self):
        """The equivalent ``torch.nn`` module with a copy of the weights (see mlpcore.io.to_torch)."""
        return registry.to_torch(self)

    # ----- pickle / copy -----
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for k in _TRANSIENT:
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for _, c in self._named_children():
            adopt(self, c, bump=False)
        for v in state.values():
            if isinstance(v, Module):
                adopt(self, v, bump=False)
            elif isinstance(v, Stored):
                v._users.add(self)


def check_buffer(value, current: np.ndarray, what: str) -> np.ndarray:
    """``value`` as an array shaped like buffer ``current`` (a real number array, finite), or the
    error: the rule for every write of buffer values (``load_state_dict``, checkpoints)."""
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{what}: expected a real numeric array, got dtype {a.dtype}")
    if a.shape != np.shape(current):
        raise ValueError(f"{what}: expected shape {np.shape(current)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: contains NaN or Inf")
    return a


def check_distinct_modules(owner: str, children: list) -> None:
    """Refuse a module object that appears twice in the tree under ``children`` ((name, module)
    pairs): a module keeps the inputs of its last forward for its backward, so a second use
    overwrites what the first one's backward needs. Shared Parameters (TiedLinear) are fine."""
    seen: dict = {}

    def walk(path: str, m: Module) -> None:
        if id(m) in seen:
            raise ValueError(
                f"{owner}: the same {type(m).__name__} object is at position {seen[id(m)]} and at position "
                f"{path}; a module saves its inputs for backward, so each use needs its own object: create "
                f"a new one (share weights with TiedLinear)")
        seen[id(m)] = path
        for name, c in m._named_children():
            walk(f"{path}.{name}", c)

    for name, m in children:
        walk(name, m)
