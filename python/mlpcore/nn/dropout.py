"""``Dropout``: inverted dropout, zeroing each value with probability ``p`` in train mode and
scaling the rest by 1 / (1 - p); the identity in eval mode. Computes in its input's dtype.

Masks come from a counter-based RNG (seed, counter), shared by both execution paths: a model
draws the same masks module by module and compiled. The state is saved in checkpoints and
pickles, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._validate import seed_or_random
from . import registry
from .grad_mode import SKIPPED, grad_state, no_grad_error
from .module import Module
from .parameter import input_dtype


class Dropout(Module):
    """Inverted dropout with probability ``p`` in [0, 1). seed: None draws one from the global
    stream (``mlpcore.manual_seed``)."""

    def __init__(self, p: float = 0.5, seed: Optional[int] = None):
        self.p = p
        self._state = _core.DropoutState(seed_or_random(seed))

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, v: float) -> None:
        # both paths read `_p`; a compiled network baked the old value in
        if not isinstance(v, (int, float, np.floating)) or not (0.0 <= float(v) < 1.0):
            raise ValueError(f"p: expected a probability in [0, 1), got {v!r}")
        self._p = float(v)
        self._changed()

    def forward(self, x):
        dt = input_dtype(x)
        d = self.__dict__
        if not self.training or self._p == 0.0:
            d["_mask"] = None if grad_state.enabled else SKIPPED
            xs = _core._as_matrix(x, "x", dt)
            d["_shape"], d["_dtype"] = xs.shape, dt
            return xs.copy() if xs is x else xs
        y, mask = _core.dropout_forward(x, self._p, self._state, dt)
        d["_mask"] = mask if grad_state.enabled else SKIPPED
        return y

    def backward(self, grad_output):
        mask = self.__dict__.get("_mask", ...)  # None: the forward was the identity
        if mask is ...:
            raise RuntimeError("Dropout.backward called before forward")
        if mask is SKIPPED:
            raise no_grad_error("Dropout")
        if mask is None:
            g = _core._as_matrix(grad_output, "grad_output", self._dtype, self._shape[1])
            if g.shape[0] != self._shape[0]:
                raise ValueError(f"grad_output: expected {self._shape[0]} rows (the batch of the last "
                                 f"forward), got shape {g.shape}")
            return g.copy() if g is grad_output else g
        return _core.mul(grad_output, mask, mask.dtype)

    # The RNG state is a C++ object: pickled as its (seed, counter).
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_state"] = (self._state.seed, self._state.counter)
        return state

    def __setstate__(self, state: dict) -> None:
        seed, counter = state.pop("_state")
        super().__setstate__(state)
        self._state = _core.DropoutState(seed)
        self._state.counter = counter


def _build(d: dict, ctx: registry.BuildContext, path: str) -> Dropout:
    m = Dropout(d["p"], seed=int(d["seed"]))
    m._state.counter = int(d.get("counter", 0))
    return m


registry.register(registry.Layer(
    Dropout,
    # seed and counter (as strings: JSON numbers lose 64-bit ints): a resumed run draws the same masks
    describe=lambda m, ctx: {"p": m.p, "seed": str(m._state.seed), "counter": str(m._state.counter)},
    build=_build,
    lower=lambda m, ctx, base: [registry.op(_core.OpKind.dropout, p=m.p, dropout=m._state)],
    features=registry.passthrough,
    repr=lambda m: f"p={m.p}",
    torch=registry.TorchTwin(("Dropout",), lambda m, torch, convert: torch.nn.Dropout(m.p),
                             lambda t, torch, convert: Dropout(t.p)),
    onnx=lambda m, ctx, x: x,  # an inference graph: the eval-mode identity, no node
))
