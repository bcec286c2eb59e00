"""``OpLayer``: the base of a layer whose math is one core op (LayerNorm, BatchNorm1d, ...).

Such a layer has no kernels bindings of its own: its registry entry's ``lower`` gives the op's
``OpSpec`` (parameter, buffer and frozen-gradient fields included), and the module path runs that
spec through ``_core.op_forward`` / ``_core.op_backward`` — the op's ``OpDef``, the very code a
compiled ``Network`` runs. So a new op-backed layer is its C++ op, one file here with its class and
registry entry, and nothing else on the Python side.

The spec is cached per module version (a parameter moved or was frozen, a hyper-parameter set:
the version moves, see ``Module``). Computes in the dtype of the layer's arena, or of its input
for a layer without parameters or buffers.
"""

from __future__ import annotations

from .. import _core
from . import registry
from .grad_mode import SKIPPED, grad_state
from .module import Module
from .parameter import input_dtype


class OpLayer(Module):
    """A Module computed by one core op (see the module docs); subclasses register a ``lower``."""

    def _op(self) -> tuple:
        """(OpSpec, Arena or None) of this layer now."""
        c = self.__dict__.get("_op_spec")
        if c is None or c[0] != self._version:
            ctx = registry.LowerContext()
            ops = registry.entry(type(self)).lower(self, ctx, 0)
            if ops is None or len(ops) != 1 or len(ctx.arenas) > 1:
                raise RuntimeError(f"{type(self).__name__}: its parameters and buffers lie in different arenas")
            c = self.__dict__["_op_spec"] = (self._version, ops[0], ctx.arenas[0] if ctx.arenas else None)
        return c[1], c[2]

    def forward(self, x):
        spec, arena = self._op()
        if arena is not None and not arena.is_cpu:
            self._require_cpu()
        dt = arena.dtype if arena is not None else input_dtype(x)
        y, xs, saved = _core.op_forward(spec, None if arena is None else arena.core, x, self.training, dt)
        self.__dict__["_fwd"] = (self._version, xs, y, saved, self.training, dt) if grad_state.enabled else SKIPPED
        return y

    def backward(self, grad_output):
        version, xs, y, saved, training, dt = self._saved("_fwd")
        if version != self._version:
            raise RuntimeError(f"{type(self).__name__}.backward: the layer changed since the forward (parameters "
                               "moved or were frozen, or a hyper-parameter was set); run the forward again")
        spec, arena = self._op()
        return _core.op_backward(spec, None if arena is None else arena.core, grad_output, xs, y, saved, training,
                                 dt, True)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_op_spec", None)  # a C++ OpSpec: rebuilt on first use
        return state
