"""Parameters and the flat arenas they live in.

An :class:`Arena` is one C++ ``ParamArena`` (a parameter buffer and a gradient buffer of the same
layout) plus what Python knows about it without asking C++: device, dtype, size, the Parameters
(and Buffers) living in it, and whether it is *pinned*. A :class:`Parameter` is a tensor at an
offset in an arena; a :class:`Buffer` is non-parameter state (running statistics) stored the
same way, so that it moves, gathers and pickles with the parameters of its layer.

Pinned means that something outside the modules holds pointers into the arena: a ``.data`` /
``.grad`` view handed to the user, an optimizer built over its parameters, or a compiled network
handed out by ``Sequential.compiled()``. A pinned arena is never gathered into another arena by a
``Sequential`` (those pointers would silently go stale); ``Module.to(device)`` still moves it, as
PyTorch's ``.to()`` does: views of the old device's memory then no longer reach the model.

When a parameter moves (:func:`gather`), everyone interested is told: the modules holding it bump
their version (their compiled networks are rebuilt) and optimizers over it re-resolve their
segments before their next step, keeping their state.

Offsets in an arena are rounded up to 16 elements (64 bytes in float32): aligned rows for the
kernels. The padding is zero in both parameters and gradients, so optimizers may sweep over it.
"""

from __future__ import annotations

import weakref
from typing import Iterable

import numpy as np

from .. import _core

ALIGN = 16


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def input_dtype(x) -> np.dtype:
    """The dtype an input-driven computation (activation, dropout, loss) runs in: the input's
    float32 / float64 (native byte order), else float32 (the core then refuses or converts)."""
    dt = getattr(x, "dtype", None)
    if isinstance(dt, np.dtype) and dt.kind == "f" and dt.itemsize in (4, 8):
        return np.dtype(f"f{dt.itemsize}")
    return np.dtype(np.float32)


class Arena:
    """A C++ ParamArena and its Python-side description (see the module docs)."""

    __slots__ = ("core", "device", "dtype", "numel", "is_cpu", "params", "pinned", "__weakref__")

    def __init__(self, device: str, dtype: np.dtype, numel: int):
        self.core = _core.ParamArena(device, dtype, numel)
        self.device, self.dtype, self.numel = device, np.dtype(dtype), int(numel)
        self.is_cpu = device == "cpu"
        self.params: "weakref.WeakSet[Stored]" = weakref.WeakSet()  # Parameters and Buffers
        self.pinned = False

    def views(self) -> tuple:
        """Zero-copy (numel,) views of the whole parameter and gradient buffers (CPU only)."""
        return self.core.view(False, 0, [self.numel]), self.core.view(True, 0, [self.numel])

    def __reduce__(self):
        # Values and gradients by copy; a copy has no outside pointers into it, so it is not pinned
        # (an optimizer unpickled with it pins it again).
        values, grads = self.core.read(False, 0, self.numel), self.core.read(True, 0, self.numel)
        return (_rebuild_arena, (self.device, self.dtype.str, self.numel, values, grads))

    def __repr__(self) -> str:
        return f"Arena(device={self.device!r}, dtype={self.dtype}, numel={self.numel}, pinned={self.pinned})"


def _rebuild_arena(device: str, dtype: str, numel: int, values: np.ndarray, grads: np.ndarray) -> Arena:
    a = Arena(device, np.dtype(dtype), numel)
    a.core.write(False, 0, values)
    a.core.write(True, 0, grads)
    return a


class Stored:
    """A tensor at an offset in an arena: a :class:`Parameter` (trained) or a :class:`Buffer`
    (non-parameter state). Both move, gather and pickle with their arena; the holders in
    ``_users`` are told when one moves (``_param_moved``)."""

    __slots__ = ("_arena", "_offset", "shape", "numel", "_views", "_users", "__weakref__")

    def __init__(self, arena: Arena, offset: int, shape: tuple):
        self._arena = arena
        self._offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.numel = int(np.prod(self.shape))
        self._views = None  # (data, grad) views for the modules' own use, made on first use
        self._users: "weakref.WeakSet" = weakref.WeakSet()  # modules holding it, optimizers over it
        arena.params.add(self)

    @property
    def dtype(self) -> np.dtype:
        return self._arena.dtype

    @property
    def device(self) -> str:
        return self._arena.device

    # ----- the modules' own access: cached views, no pinning -----
    def _view(self, grad: bool) -> np.ndarray:
        """The cached zero-copy view of the parameter (grad=False) or its gradient (CPU only)."""
        v = self._views
        if v is None:
            a, shape = self._arena.core, list(self.shape)
            v = self._views = (a.view(False, self._offset, shape), a.view(True, self._offset, shape))
        return v[grad]

    def _read(self, grad: bool = False) -> np.ndarray:
        """A copy of the values (or gradient), any device."""
        if self._arena.is_cpu:
            return self._view(grad).copy()
        return self._arena.core.read(grad, self._offset, self.numel).reshape(self.shape)

    def _write(self, grad: bool, values: np.ndarray) -> None:
        """Write already checked values of the parameter's shape (converted to its dtype)."""
        if self._arena.is_cpu:
            self._view(grad)[...] = values
        else:
            self._arena.core.write(grad, self._offset, np.ascontiguousarray(values, dtype=self.dtype).ravel())

    # ----- moves -----
    def _move(self, arena: Arena, offset: int) -> None:
        self._arena.params.discard(self)
        self._arena, self._offset, self._views = arena, int(offset), None
        arena.params.add(self)
        for user in list(self._users):
            user._param_moved()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device!r})"


class Parameter(Stored):
    """A tensor of weights in an arena. ``data`` / ``grad`` are numpy arrays: zero-copy views on
    the CPU (``p.data[...] = a`` writes in place), copies on CUDA. Assigning ``p.data = a``
    copies ``a`` in after a shape check, converting to the parameter's dtype and refusing NaN/Inf.

    Taking a view pins the arena (see the module docs): it stays live for as long as the model's
    parameters stay on that device.

    ``requires_grad = False`` freezes it, as in PyTorch: no gradient is computed for it (a frozen
    Linear weight costs no dW GEMM; layers before the first trainable one no backward at all in a
    training step), optimizers skip it (their state for it is kept) and gradient clipping leaves
    it out. Its ``.grad`` keeps whatever it held.
    """

    __slots__ = ("_requires_grad",)

    def __init__(self, arena: Arena, offset: int, shape: tuple, requires_grad: bool = True):
        super().__init__(arena, offset, shape)
        self._requires_grad = bool(requires_grad)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"requires_grad: expected a bool, got {type(value).__name__}")
        if bool(value) != self._requires_grad:
            self._requires_grad = bool(value)
            for user in list(self._users):  # modules re-lower (frozen gradients), optimizers re-resolve
                user._param_moved()

    def requires_grad_(self, requires_grad: bool = True) -> "Parameter":
        """Set ``requires_grad`` in place and return the parameter (PyTorch's spelling)."""
        self.requires_grad = requires_grad
        return self

    # ----- the user's access -----
    def _get(self, grad: bool) -> np.ndarray:
        arena = self._arena
        if arena.is_cpu:
            arena.pinned = True  # pointers into the arena leave the modules' hands
            return self._view(grad).view()  # a new array object over the same memory
        return arena.core.read(grad, self._offset, self.numel).reshape(self.shape)

    def _checked(self, value, what: str) -> np.ndarray:
        """``value`` as a C-contiguous array of this parameter's shape and dtype, or the error:
        TypeError for a non-numeric array, ValueError for another shape or NaN / Inf. The rule for
        every write of new values (``p.data = a``, ``load_state_dict``)."""
        a = np.asarray(value)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{what}: expected a real numeric array, got dtype {a.dtype}")
        if a.shape != self.shape:
            raise ValueError(f"{what}: expected shape {self.shape}, got {a.shape}")
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused below
            b = np.ascontiguousarray(a, dtype=self.dtype)
        if not np.all(np.isfinite(b)):
            raise ValueError(f"{what}: contains NaN or Inf" + (f" after conversion to {self.dtype}"
                                                               if np.all(np.isfinite(a)) else ""))
        return b

    def _set(self, grad: bool, value) -> None:
        self._write(grad, self._checked(value, "Parameter.grad" if grad else "Parameter.data"))

    data = property(lambda self: self._get(False), lambda self, v: self._set(False, v))
    grad = property(lambda self: self._get(True), lambda self, v: self._set(True, v))

    def __reduce__(self):
        return (_rebuild_parameter, (self._arena, self._offset, self.shape, self._requires_grad))


def _rebuild_parameter(arena: Arena, offset: int, shape: tuple, requires_grad: bool = True) -> Parameter:
    return Parameter(arena, offset, shape, requires_grad)


class Buffer(Stored):
    """Non-parameter state in an arena (BatchNorm's running statistics): moved with the model
    (``to(device)``, a Sequential's gather), pickled and copied with it, never trained. Its
    module names its parts for ``state_dict`` and checkpoints (``Module._own_buffers``)."""

    __slots__ = ()

    def __reduce__(self):
        return (_rebuild_buffer, (self._arena, self._offset, self.shape))


def _rebuild_buffer(arena: Arena, offset: int, shape: tuple) -> Buffer:
    return Buffer(arena, offset, shape)


def new_parameters(shapes: Iterable[tuple], dtype: np.dtype, device: str = "cpu", buffers: Iterable[tuple] = ()) \
        -> list:
    """Fresh zero Parameters of the given shapes, then Buffers of the ``buffers`` shapes, side by
    side in one new arena (in that order)."""
    kinds = [(Parameter, tuple(s)) for s in shapes] + [(Buffer, tuple(s)) for s in buffers]
    sizes = [align(int(np.prod(s))) for _, s in kinds]
    arena = Arena(device, dtype, sum(sizes[:-1]) + int(np.prod(kinds[-1][1])))
    out, off = [], 0
    for (cls, s), n in zip(kinds, sizes):
        out.append(cls(arena, off, s))
        off += n
    return out


def gather(params: list, device: str, dtype: np.dtype) -> Arena:
    """Move ``params`` (distinct Parameters and Buffers) into one fresh arena in this order, keeping
    values and gradients; everyone holding them is told (:meth:`Stored._move`)."""
    offsets, total = [], 0
    for p in params:
        offsets.append(total)
        total += align(p.numel)
    arena = Arena(device, dtype, total)
    if device == "cpu" and all(p._arena.is_cpu for p in params):
        values, grads = arena.views()
        for p, off in zip(params, offsets):
            values[off:off + p.numel] = p._view(False).ravel()
            grads[off:off + p.numel] = p._view(True).ravel()
    else:
        for p, off in zip(params, offsets):
            arena.core.write(False, off, p._arena.core.read(False, p._offset, p.numel))
            arena.core.write(True, off, p._arena.core.read(True, p._offset, p.numel))
    for p, off in zip(params, offsets):
        p._move(arena, off)
    return arena


def zero_grads(arenas: Iterable[Arena]) -> None:
    """Zero every gradient of each arena: one fill per arena."""
    for a in arenas:
        a.core.zero_grad()


def arenas_of(params: Iterable[Parameter]) -> list:
    """The distinct arenas holding ``params``, in order of first appearance."""
    seen: dict = {}
    for p in params:
        seen.setdefault(id(p._arena), p._arena)
    return list(seen.values())


def place(p: Parameter) -> tuple:
    """(C++ ParamArena, offset, numel): where the core finds ``p``'s values (for C++ entry points
    that take a flat layout of parameters, e.g. ``Network.loss_and_grad``)."""
    return p._arena.core, p._offset, p.numel
