"""``LayerNorm``: normalisation over the features of each row, as ``torch.nn.LayerNorm(C)``.

Shapes: x (B, C); weight, bias (C,) (weight starts at 1, bias at 0); y (B, C):
    y = (x - mean(x_row)) / sqrt(var(x_row) + eps) * weight + bias    (biased variance per row).
The math is the core's layer_norm op (cpp/src/ops/layer_norm.cpp, CUDA twin cuda/layer_norm.cu),
run by both paths (``OpLayer``). Each row is normalised on its own, so the layer is batch-invariant.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._validate import nonneg, pos_int
from . import registry
from .op_layer import OpLayer
from .parameter import new_parameters


def _normalized_features(normalized_shape) -> int:
    """C from ``normalized_shape``: an int, or a sequence of one int (inputs are 2-D (B, C))."""
    if isinstance(normalized_shape, (tuple, list)):
        if len(normalized_shape) != 1:
            raise ValueError(f"normalized_shape: inputs are 2-D (batch, features), so it names the features only: "
                             f"expected an int or a 1-element sequence, got {tuple(normalized_shape)!r}")
        normalized_shape = normalized_shape[0]
    return pos_int("normalized_shape", normalized_shape)


class LayerNorm(OpLayer):
    """LayerNorm over the last dimension (PyTorch's names and defaults): ``normalized_shape`` C
    (an int or ``(C,)``), ``eps``, ``elementwise_affine`` (learned weight and bias), ``bias``
    (False: weight only), ``dtype`` of the parameters."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=np.float32):
        c = _normalized_features(normalized_shape)
        self.normalized_shape = (c,)
        self.eps = eps
        self.elementwise_affine = bool(elementwise_affine)
        dt = _core._as_dtype(dtype)  # the core's dtype rule (TypeError naming dtype)
        self.weight = self.bias = None
        if self.elementwise_affine:
            params = new_parameters([(c,), (c,)] if bias else [(c,)], dt)
            params[0]._write(False, np.ones(c))
            self.weight = params[0]
            self.bias = params[1] if bias else None

    @property
    def eps(self) -> float:
        return self._eps

    @eps.setter
    def eps(self, v: float) -> None:
        self._eps = nonneg("eps", v)
        self._changed()  # lowered into the op


def _lower(m: LayerNorm, ctx: registry.LowerContext, base: int) -> Optional[list]:
    fields, arenas = {}, set()
    for name, p in (("weight", m.weight), ("bias", m.bias)):
        if p is not None:
            arena, fields[name + "_off"] = ctx.locate(p)
            fields["arena"], fields[name + "_grad"] = arena, p.requires_grad
            arenas.add(arena)
    if len(arenas) > 1:
        return None  # one op reads one arena
    return [registry.op(_core.OpKind.layer_norm, in_features=m.normalized_shape[0], attrs=[m.eps], **fields)]


def _onnx(m: LayerNorm, ctx, x: str) -> str:
    """LayerNormalization over the last axis (opset 17 on; it needs a scale: ones without affine),
    composed before."""
    w = ctx.param(m.weight) if m.weight is not None else None
    b = ctx.param(m.bias) if m.bias is not None else None
    if ctx.opset >= 17:
        scale = w if w is not None else ctx.constant(np.ones(m.normalized_shape[0]))
        inputs = [x, scale] + ([b] if b is not None else [])
        return ctx.node("LayerNormalization", inputs, axis=-1, epsilon=m.eps)
    return ctx.normalise(x, 1, m.eps, w, b)


def _to_torch(m: LayerNorm, torch, convert):
    kw = {"bias": m.bias is not None} if m.elementwise_affine else {}
    out = torch.nn.LayerNorm(m.normalized_shape[0], eps=m.eps, elementwise_affine=m.elementwise_affine,
                             dtype=registry.torch_dtype(torch, m.dtype if m.weight is not None else np.float32), **kw)
    with torch.no_grad():
        if m.weight is not None:
            out.weight.copy_(torch.from_numpy(m.weight._read()))
        if m.bias is not None:
            out.bias.copy_(torch.from_numpy(m.bias._read()))
    return out


def _from_torch(t, torch, convert) -> LayerNorm:
    shape = tuple(t.normalized_shape)
    if len(shape) != 1:
        raise TypeError(f"from_torch: LayerNorm over {shape} (several dimensions); mlpcore's inputs are 2-D")
    w = t.weight
    dtype = registry.numpy_dtype(torch, w, "LayerNorm") if w is not None else np.float32
    m = LayerNorm(shape[0], eps=t.eps, elementwise_affine=w is not None, bias=t.bias is not None, dtype=dtype)
    if w is not None:
        m.weight.data = w.detach().cpu().numpy()
    if t.bias is not None:
        m.bias.data = t.bias.detach().cpu().numpy()
    return m


registry.register(registry.Layer(
    LayerNorm,
    describe=lambda m, ctx: {"normalized_shape": m.normalized_shape[0], "eps": m.eps,
                             "elementwise_affine": m.elementwise_affine, "bias": m.bias is not None},
    build=lambda d, ctx, path: LayerNorm(d["normalized_shape"], eps=d["eps"], elementwise_affine=d["elementwise_affine"],
                                         bias=d.get("bias", True), dtype=ctx.dtype),
    lower=_lower,
    features=lambda m, width: (m.normalized_shape[0], m.normalized_shape[0]),
    repr=lambda m: f"({m.normalized_shape[0]},), eps={m.eps}, elementwise_affine={m.elementwise_affine}"
                   + ("" if m.bias is not None or not m.elementwise_affine else ", bias=False"),
    torch=registry.TorchTwin(("LayerNorm",), _to_torch, _from_torch),
    onnx=_onnx,
))
