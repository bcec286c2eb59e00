"""Element-wise (and row-wise: Softmax) activations. They keep the width, hold no parameters and
compute in their input's dtype (float32 or float64; other inputs follow the package's policy)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validate import finite_float
from . import registry
from .grad_mode import SKIPPED, grad_state
from .module import Module
from .parameter import input_dtype


class _Activation(Module):
    kind = _core.ActKind.identity
    param = 0.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        # xs: x as the kernel checked and converted it (once), kept for backward
        a, xs = _core.act_forward(self.kind, self.param, x, input_dtype(x))
        d = self.__dict__
        if grad_state.enabled:
            d["_x"], d["_a"] = xs, a
            # The caller owns the returned array (may change it in place, e.g. `out -= y`); backward
            # needs `a` unchanged, so hand back a copy (an O(B*C) copy, small next to the GEMMs).
            return a.copy()
        d["_x"] = d["_a"] = SKIPPED
        return a

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        a = self._saved("_a")
        return _core.act_backward(self.kind, self.param, grad_output, self._x, a, a.dtype)


class Identity(_Activation):
    kind = _core.ActKind.identity


class ReLU(_Activation):
    kind = _core.ActKind.relu


class LeakyReLU(_Activation):
    kind = _core.ActKind.leaky_relu

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    @property
    def negative_slope(self) -> float:
        return self.param

    @negative_slope.setter
    def negative_slope(self, v: float) -> None:
        # `param` is what both paths read; a compiled network baked the old value in
        self.param = finite_float("negative_slope", v)
        self._changed()


class Sigmoid(_Activation):
    kind = _core.ActKind.sigmoid


class Tanh(_Activation):
    kind = _core.ActKind.tanh


class ELU(_Activation):
    kind = _core.ActKind.elu

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    @property
    def alpha(self) -> float:
        return self.param

    @alpha.setter
    def alpha(self, v: float) -> None:
        self.param = finite_float("alpha", v)
        self._changed()


class GELU(_Activation):
    """GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's default)."""

    kind = _core.ActKind.gelu


class SiLU(_Activation):
    kind = _core.ActKind.silu


class Softmax(_Activation):
    """Row-wise softmax. For classification prefer raw logits + CrossEntropyLoss (which applies
    log-softmax itself, stably); use Softmax for probabilities at inference."""

    kind = _core.ActKind.softmax


# ------------------------------------------------------------------------------------------------
# registry entries
# ------------------------------------------------------------------------------------------------

def _lower(m: _Activation, ctx: registry.LowerContext, base: int) -> list:
    return [registry.op(_core.OpKind.activation, act_kind=m.kind, act_param=float(m.param))]


def _gelu_from_torch(t, torch, convert) -> GELU:
    if t.approximate != "none":
        raise TypeError(f"GELU(approximate={t.approximate!r}) is not supported; mlpcore's GELU is the exact erf "
                        "form (approximate='none')")
    return GELU()


def _softmax_from_torch(t, torch, convert) -> Softmax:
    if t.dim not in (-1, 1):
        raise TypeError(f"Softmax(dim={t.dim}) is not supported; mlpcore's Softmax is over the last dim")
    return Softmax()


# ONNX exports (``ctx``: mlpcore.io.onnx.OnnxContext). Where ONNX Runtime has no float64 kernel
# for an op (``ctx.native``), the float64 graph computes the same formula with ops that have one.

def _leaky_relu_onnx(m: LeakyReLU, ctx, x: str) -> str:
    if ctx.native("LeakyRelu"):
        return ctx.node("LeakyRelu", [x], alpha=m.negative_slope)
    positive = ctx.node("Greater", [x, ctx.constant(0.0)])
    return ctx.node("Where", [positive, x, ctx.node("Mul", [x, ctx.constant(m.negative_slope)])])


def _elu_onnx(m: ELU, ctx, x: str) -> str:
    if ctx.native("Elu"):
        return ctx.node("Elu", [x], alpha=m.alpha)
    # alpha expm1(x) where x <= 0, expm1(x) = 2 tanh(x/2) / (1 - tanh(x/2)): relative accuracy near 0,
    # where exp(x) - 1 would cancel
    t = ctx.node("Tanh", [ctx.node("Mul", [x, ctx.constant(0.5)])])
    em1 = ctx.node("Div", [ctx.node("Add", [t, t]), ctx.node("Sub", [ctx.constant(1.0), t])])
    positive = ctx.node("Greater", [x, ctx.constant(0.0)])
    return ctx.node("Where", [positive, x, ctx.node("Mul", [em1, ctx.constant(m.alpha)])])


def _gelu_onnx(m: GELU, ctx, x: str) -> str:
    if ctx.opset >= 20 and ctx.native("Gelu"):  # the Gelu op (approximate="none") is opset 20's
        return ctx.node("Gelu", [x])
    # 0.5 x (1 + erf(x / sqrt 2)), in the order the kernel computes it
    u = ctx.node("Mul", [x, ctx.constant(0.70710678118654752440)])
    cdf = ctx.node("Add", [ctx.constant(1.0), ctx.erf(u)])
    return ctx.node("Mul", [ctx.node("Mul", [ctx.constant(0.5), x]), cdf])


_ONNX = {
    Identity: lambda m, ctx, x: x,
    ReLU: lambda m, ctx, x: ctx.node("Relu", [x]),
    Sigmoid: lambda m, ctx, x: ctx.node("Sigmoid", [x]),
    Tanh: lambda m, ctx, x: ctx.node("Tanh", [x]),
    SiLU: lambda m, ctx, x: ctx.node("Mul", [x, ctx.node("Sigmoid", [x])]),
    Softmax: lambda m, ctx, x: ctx.node("Softmax", [x], axis=-1),
    LeakyReLU: _leaky_relu_onnx,
    ELU: _elu_onnx,
    GELU: _gelu_onnx,
}


def _register(cls, describe=None, build=None, repr=None, to_torch=None, from_torch=None) -> None:
    name = cls.__name__
    registry.register(registry.Layer(
        cls,
        describe=describe or (lambda m, ctx: {}),
        build=build or (lambda d, ctx, path: cls()),
        lower=_lower, features=registry.passthrough, repr=repr,
        torch=registry.TorchTwin((name,), to_torch or (lambda m, torch, convert: getattr(torch.nn, name)()),
                                 from_torch or (lambda t, torch, convert: cls())),
        onnx=_ONNX[cls],
    ))


for _cls in (Identity, ReLU, Sigmoid, Tanh, SiLU):
    _register(_cls)
_register(GELU, from_torch=_gelu_from_torch)
_register(Softmax, to_torch=lambda m, torch, convert: torch.nn.Softmax(dim=-1),
          from_torch=_softmax_from_torch)
_register(LeakyReLU, describe=lambda m, ctx: {"negative_slope": m.negative_slope},
          build=lambda d, ctx, path: LeakyReLU(d["negative_slope"]),
          repr=lambda m: f"negative_slope={m.negative_slope}",
          to_torch=lambda m, torch, convert: torch.nn.LeakyReLU(m.negative_slope),
          from_torch=lambda t, torch, convert: LeakyReLU(t.negative_slope))
_register(ELU, describe=lambda m, ctx: {"alpha": m.alpha}, build=lambda d, ctx, path: ELU(d["alpha"]),
          repr=lambda m: f"alpha={m.alpha}",
          to_torch=lambda m, torch, convert: torch.nn.ELU(m.alpha),
          from_torch=lambda t, torch, convert: ELU(t.alpha))
