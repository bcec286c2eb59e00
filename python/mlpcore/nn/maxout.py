"""``Maxout`` (Goodfellow et al.): ``pieces`` linear pieces per output unit, y = their max.

Shapes: x (B, in_features); weight (out_features * pieces, in_features); z = x @ weight.T + bias
(B, out_features * pieces); output unit c takes the max of z's columns c*pieces ...
c*pieces + pieces - 1. The gradient goes to the winning piece only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._validate import pos_int
from . import registry
from .grad_mode import SKIPPED, grad_state
from .linear import Linear
from .module import Module


class Maxout(Module):
    """Maxout unit: ``out_features`` outputs, each the max of ``pieces`` linear pieces."""

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, bias: bool = True,
                 init: str = "xavier_uniform", dtype=np.float32, seed: Optional[int] = None):
        self.pieces = pos_int("pieces", pieces)
        self.linear = Linear(in_features, pos_int("out_features", out_features) * self.pieces,
                             bias=bias, init=init, dtype=dtype, seed=seed)
        self.in_features, self.out_features = self.linear.in_features, int(out_features)

    # The inner Linear is an implementation detail: its parameters are Maxout's own ("weight",
    # "bias"), as in the checkpoint names, and it is no child in repr or module paths.
    def _named_children(self):
        return []

    def _own_parameters(self):
        ps = [("weight", self.linear.weight)]
        if self.linear.bias is not None:
            ps.append(("bias", self.linear.bias))
        return ps

    weight = property(lambda self: self.linear.weight)
    bias = property(lambda self: self.linear.bias)

    def forward(self, x):
        z = self.linear.forward(x)
        y, idx = _core.maxout_forward(z, self.pieces, z.dtype)
        self.__dict__["_idx"] = idx if grad_state.enabled else SKIPPED
        return y

    def backward(self, grad_output):
        idx = self._saved("_idx")
        dz = _core.maxout_backward(grad_output, idx, self.pieces, self.dtype)
        return self.linear.backward(dz)


def _lower(m: Maxout, ctx: registry.LowerContext, base: int) -> Optional[list]:
    ops = ctx.lower(m.linear, base)
    return None if ops is None else ops + [registry.op(_core.OpKind.maxout, pieces=m.pieces)]


def _onnx(m: Maxout, ctx, x: str) -> str:
    """Gemm to (B, out * pieces), Reshape to (B, out, pieces) (0: keep the batch dimension), the
    max over the last axis (ReduceMax takes its axes as an input from opset 18)."""
    z = ctx.node("Reshape", [ctx.export(m.linear, x), ctx.constant([0, m.out_features, m.pieces])])
    if ctx.opset >= 18:
        return ctx.node("ReduceMax", [z, ctx.constant([2])], keepdims=0)
    return ctx.node("ReduceMax", [z], axes=[2], keepdims=0)


registry.register(registry.Layer(
    Maxout,
    describe=lambda m, ctx: {"in_features": m.in_features, "out_features": m.out_features, "pieces": m.pieces,
                             "bias": m.linear.bias is not None, "init": m.linear.init},
    build=lambda d, ctx, path: Maxout(d["in_features"], d["out_features"], d["pieces"], bias=d["bias"],
                                      init=d.get("init", "xavier_uniform"), dtype=ctx.dtype, seed=0),
    lower=_lower,
    features=lambda m, width: (m.in_features, m.out_features),
    repr=lambda m: f"in_features={m.in_features}, out_features={m.out_features}, pieces={m.pieces}",
    onnx=_onnx,
))
