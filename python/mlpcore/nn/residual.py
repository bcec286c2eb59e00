"""``Residual``: y = x + block(x), for a block that keeps the width. The add gate sends the
gradient down both paths."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from . import registry
from .module import Module, check_distinct_modules


class Residual(Module):
    """y = x + block(x)."""

    def __init__(self, block: Module):
        if not isinstance(block, Module):
            raise TypeError(f"block: expected a Module, got {type(block).__name__}")
        check_distinct_modules("Residual", [("block", block)])
        fin, fout = block._features(None)
        if fin is not None and fout is not None and fin != fout:
            raise ValueError(f"Residual: block maps {fin} features to {fout}; y = x + block(x) needs equal widths")
        self.block = block

    # With finiteness checks off, inf + -inf is NaN by policy: numpy's warning about it is noise.
    @staticmethod
    def _add(a, b, name: str):
        with np.errstate(invalid="ignore", over="ignore"):
            return _core._as_matrix(a, name, b.dtype) + b

    def forward(self, x):
        return self._add(x, self.block.forward(x), "x")

    def backward(self, grad_output):
        return self._add(grad_output, self.block.backward(grad_output), "grad_output")

    def _forward_modules(self, x):
        return self._add(x, self.block._forward_modules(x), "x")

    def _backward_modules(self, grad_output):
        return self._add(grad_output, self.block._backward_modules(grad_output), "grad_output")


def _lower(m: Residual, ctx: registry.LowerContext, base: int) -> Optional[list]:
    ops = ctx.lower(m.block, base)
    return None if ops is None else ops + [registry.op(_core.OpKind.residual_add, skip=base)]


def _features(m: Residual, width: Optional[int]) -> tuple:
    fin, _ = m.block._features(width)
    return fin, fin if fin is not None else width


registry.register(registry.Layer(
    Residual,
    describe=lambda m, ctx: {"block": ctx.describe(m.block)},
    build=lambda d, ctx, path: Residual(ctx.build(d["block"], ctx.child(path, "block"))),
    lower=_lower, features=_features,
    onnx=lambda m, ctx, x: ctx.node("Add", [x, ctx.export(m.block, x, "block")]),
))
