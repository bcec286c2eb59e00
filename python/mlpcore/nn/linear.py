"""``Linear`` and ``TiedLinear``: y = x @ weight.T + bias.

Shapes: x (B, in_features); weight (out_features, in_features) as in PyTorch; bias
(out_features,); y (B, out_features). A TiedLinear reuses another Linear's weight (the same
Parameter), transposed or not, with a bias of its own.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._validate import pos_int, seed_or_random
from . import registry
from .grad_mode import SKIPPED, grad_state
from .module import Module
from .parameter import new_parameters

_INITS = {
    "zeros": _core.InitKind.zeros,
    "he_uniform": _core.InitKind.he_uniform,
    "he_normal": _core.InitKind.he_normal,
    "xavier_uniform": _core.InitKind.xavier_uniform,
    "xavier_normal": _core.InitKind.xavier_normal,
}


class Linear(Module):
    """``y = x @ weight.T + bias``; weight (out_features, in_features), bias (out_features,).

    init: he_uniform (default), he_normal, xavier_uniform, xavier_normal or zeros, from our
    portable seeded RNG (the same numbers on every platform); the bias starts at zero.
    seed: None draws one from the global stream (``mlpcore.manual_seed``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "he_uniform",
                 dtype=np.float32, seed: Optional[int] = None):
        self.in_features = pos_int("in_features", in_features)
        self.out_features = pos_int("out_features", out_features)
        if init not in _INITS:
            raise ValueError(f"init: expected one of {sorted(_INITS)}, got {init!r}")
        dt = _core._as_dtype(dtype)  # the core's dtype rule (TypeError naming dtype)
        self.init = init
        self.transposed = False
        shape = (self.out_features, self.in_features)
        params = new_parameters([shape, (self.out_features,)] if bias else [shape], dt)
        params[0]._arena.core.init(0, params[0].numel, _INITS[init], self.in_features, self.out_features,
                                   seed_or_random(seed))
        self.weight = params[0]
        self.bias = params[1] if bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        w, b = self.weight, self.bias
        if not w._arena.is_cpu:
            self._require_cpu()
        # returns the validated (converted) input too: backward needs it
        z, xs = _core.linear_forward(x, w._view(False), None if b is None else b._view(False),
                                     self.transposed, w._arena.dtype)
        self.__dict__["_x"] = xs if grad_state.enabled else SKIPPED
        return z

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = self._saved("_x")
        w, b = self.weight, self.bias
        # a frozen parameter (requires_grad False) gets no gradient: no dW GEMM
        return _core.linear_backward(grad_output, x, w._view(False), w._view(True) if w.requires_grad else None,
                                     None if b is None or not b.requires_grad else b._view(True), True, self.transposed,
                                     w._arena.dtype)


class TiedLinear(Linear):
    """A Linear layer that reuses ``source``'s weight (tied weights). With ``transpose=True``
    (a tied autoencoder's decoder) it computes ``x @ source.weight + bias``, mapping
    ``source.out_features`` to ``source.in_features``. Gradients of both uses accumulate into
    the one shared ``weight.grad``."""

    def __init__(self, source: Linear, transpose: bool = True, bias: bool = True):
        if not isinstance(source, Linear):
            raise TypeError(f"source: expected a Linear, got {type(source).__name__}")
        self.transposed = bool(transpose)
        self.in_features = source.out_features if transpose else source.in_features
        self.out_features = source.in_features if transpose else source.out_features
        self.init = source.init
        self.weight = source.weight  # the same Parameter object: shared storage and gradient
        self.bias = (new_parameters([(self.out_features,)], source.dtype, source.weight.device)[0]
                     if bias else None)


def _lower(m: Linear, ctx: registry.LowerContext, base: int) -> Optional[list]:
    arena, w_off = ctx.locate(m.weight)
    b_off = -1
    if m.bias is not None:
        b_arena, b_off = ctx.locate(m.bias)
        if b_arena != arena:  # one op indexes one arena: a TiedLinear whose source stayed in its own
            return None
    return [registry.op(_core.OpKind.linear, in_features=m.in_features, out_features=m.out_features,
                        has_bias=m.bias is not None, transposed=m.transposed, weight_off=w_off,
                        bias_off=b_off, arena=arena, weight_grad=m.weight.requires_grad,
                        bias_grad=m.bias is None or m.bias.requires_grad)]


def _features(m: Linear, width: Optional[int]) -> tuple:
    return m.in_features, m.out_features


def _repr(m: Linear) -> str:
    tied = (", tied" + (" transposed" if m.transposed else "")) if isinstance(m, TiedLinear) else ""
    return f"in_features={m.in_features}, out_features={m.out_features}, bias={m.bias is not None}{tied}"


def _to_torch(m: Linear, torch, convert):
    out = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                          dtype=registry.torch_dtype(torch, m.dtype))
    with torch.no_grad():
        out.weight.copy_(torch.from_numpy(m.weight._read()))
        if m.bias is not None:
            out.bias.copy_(torch.from_numpy(m.bias._read()))
    return out


def _from_torch(t, torch, convert) -> Linear:
    w = t.weight.detach()
    m = Linear(t.in_features, t.out_features, bias=t.bias is not None,
               dtype=registry.numpy_dtype(torch, w, "Linear"), seed=0)
    m.weight.data = w.cpu().numpy()
    if t.bias is not None:
        m.bias.data = t.bias.detach().cpu().numpy()
    return m


def _onnx(m: Linear, ctx, x: str) -> str:
    """One Gemm: y = x @ W.T + b (transB=1), or x @ W + b for a transposed TiedLinear (its weight
    is the source's initializer, stored once)."""
    inputs = [x, ctx.param(m.weight)] + ([ctx.param(m.bias)] if m.bias is not None else [])
    return ctx.node("Gemm", inputs, transB=0 if m.transposed else 1)


def _describe_tied(m: TiedLinear, ctx: registry.DescribeContext) -> dict:
    src = next((c for c in ctx.done.values() if type(c) is Linear and c.weight is m.weight), None)
    if src is None:
        raise registry.Unsupported("TiedLinear whose source Linear is not an earlier layer of the model")
    return {"source": ctx.path_of(src), "transpose": m.transposed, "bias": m.bias is not None}


def _build_tied(d: dict, ctx: registry.BuildContext, path: str) -> TiedLinear:
    src = ctx.built.get(d["source"])
    if not isinstance(src, Linear):
        raise ValueError(f"TiedLinear source {d['source']!r} is not an earlier Linear")
    return TiedLinear(src, transpose=d["transpose"], bias=d["bias"])


registry.register(registry.Layer(
    Linear,
    describe=lambda m, ctx: {"in_features": m.in_features, "out_features": m.out_features,
                             "bias": m.bias is not None, "init": m.init},
    # seed=0: the initial values are overwritten by the stored weights
    build=lambda d, ctx, path: Linear(d["in_features"], d["out_features"], bias=d["bias"],
                                      init=d.get("init", "he_uniform"), dtype=ctx.dtype, seed=0),
    lower=_lower, features=_features, repr=_repr,
    torch=registry.TorchTwin(("Linear",), _to_torch, _from_torch), onnx=_onnx,
))
registry.register(registry.Layer(
    TiedLinear, describe=_describe_tied, build=_build_tied, lower=_lower, features=_features, repr=_repr,
    onnx=_onnx,
))
