"""``BatchNorm1d``: normalisation of each feature over the batch, as ``torch.nn.BatchNorm1d(C)``
on (B, C) inputs.

Shapes: x (B, C); weight, bias (C,) (weight starts at 1, bias at 0); y (B, C):
    y = (x - mean) / sqrt(var + eps) * weight + bias
with the batch's mean and biased variance per feature in train mode, the running statistics in
eval mode. Train mode updates them: running = momentum * batch + (1 - momentum) * running (the
variance unbiased), or their cumulative average when ``momentum=None``; ``num_batches_tracked``
counts the batches. ``track_running_stats=False`` keeps none and always uses batch statistics.

The running statistics are buffers, not parameters (not in ``parameters()``, never trained):
they live in the layer's arena next to its parameters (``running_mean``, ``running_var``,
``num_batches_tracked`` in one Buffer of 2C + 1 values), so they move with ``.to(device)``, are
saved by ``state_dict`` and checkpoints under PyTorch's names, restored on load and resume, and
pickled. ``num_batches_tracked`` is counted in the model's dtype (exact up to 2^24 batches in
float32) and read back as an int64, as PyTorch's. The math is the core's batch_norm op
(cpp/src/ops/batch_norm.cpp, CUDA twin cuda/batch_norm.cu), run by both paths (``OpLayer``).
A batch of one row in train mode (or without running statistics) raises ValueError, as PyTorch.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._validate import finite_float, nonneg, pos_int
from . import registry
from .op_layer import OpLayer
from .parameter import new_parameters

_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


class BatchNorm1d(OpLayer):
    """BatchNorm over the batch (PyTorch's names and defaults): ``num_features`` C, ``eps``,
    ``momentum`` (None: cumulative average), ``affine`` (learned weight and bias),
    ``track_running_stats``, ``dtype``. ``running_mean`` / ``running_var`` (C,) and
    ``num_batches_tracked`` read as copies and can be assigned; None without running statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=np.float32):
        c = self.num_features = pos_int("num_features", num_features)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dt = _core._as_dtype(dtype)  # the core's dtype rule (TypeError naming dtype)
        self.weight = self.bias = self._stats = None
        if self.affine or self.track_running_stats:
            made = new_parameters([(c,), (c,)] if self.affine else [], dt,
                                  buffers=[(2 * c + 1,)] if self.track_running_stats else [])
            if self.affine:
                made[0]._write(False, np.ones(c))
                self.weight, self.bias = made[0], made[1]
            if self.track_running_stats:
                self._stats = made[-1]
                self.reset_running_stats()

    # ----- hyper-parameters (lowered into the op) -----
    @property
    def eps(self) -> float:
        return self._eps

    @eps.setter
    def eps(self, v: float) -> None:
        self._eps = nonneg("eps", v)
        self._changed()

    @property
    def momentum(self) -> Optional[float]:
        return self._momentum

    @momentum.setter
    def momentum(self, v: Optional[float]) -> None:
        self._momentum = None if v is None else finite_float("momentum", v)
        self._changed()

    # ----- running statistics -----
    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (as PyTorch)."""
        if self._stats is not None:
            c = self.num_features
            self._stats._write(False, np.concatenate([np.zeros(c), np.ones(c), [0.0]]))

    def _own_buffers(self) -> list:
        if self._stats is None:
            return []
        c, st = self.num_features, self._stats._read()
        return [("running_mean", st[:c]), ("running_var", st[c:2 * c]),
                ("num_batches_tracked", np.array(int(st[2 * c]), dtype=np.int64))]

    def _set_buffer(self, name: str, value: np.ndarray) -> None:
        if self._stats is None or name not in _BUFFERS:
            raise KeyError(name)
        start = _BUFFERS.index(name) * self.num_features
        st = self._stats
        st._arena.core.write(False, st._offset + start, np.ascontiguousarray(value, dtype=st.dtype).ravel())

    def _buffer(self, name: str):
        return dict(self._own_buffers()).get(name)

    def _assign(self, name: str, value) -> None:
        if self._stats is None:
            raise RuntimeError(f"BatchNorm1d.{name}: this layer keeps no running statistics "
                               "(track_running_stats=False)")
        from .module import check_buffer
        self._set_buffer(name, check_buffer(value, self._buffer(name), name))

    running_mean = property(lambda self: self._buffer("running_mean"), lambda self, v: self._assign("running_mean", v))
    running_var = property(lambda self: self._buffer("running_var"), lambda self, v: self._assign("running_var", v))
    num_batches_tracked = property(lambda self: self._buffer("num_batches_tracked"),
                                   lambda self, v: self._assign("num_batches_tracked", v))


def _lower(m: BatchNorm1d, ctx: registry.LowerContext, base: int) -> Optional[list]:
    fields = {}
    arenas = set()
    for name, p in (("weight", m.weight), ("bias", m.bias), ("state", m._stats)):
        if p is not None:
            arena, fields[name + "_off"] = ctx.locate(p)
            arenas.add(arena)
            fields["arena"] = arena
    for name, p in (("weight", m.weight), ("bias", m.bias)):
        if p is not None:
            fields[name + "_grad"] = p.requires_grad
    if len(arenas) > 1:
        return None  # one op reads one arena
    momentum = -1.0 if m.momentum is None else m.momentum  # < 0: the cumulative average
    return [registry.op(_core.OpKind.batch_norm, in_features=m.num_features, attrs=[m.eps, momentum], **fields)]


def _onnx(m: BatchNorm1d, ctx, x: str) -> str:
    """Eval mode: BatchNormalization with the running statistics; without them, PyTorch's eval
    mode normalises with the batch's statistics (composed: ReduceMean over the batch axis)."""
    c = m.num_features
    w = ctx.param(m.weight) if m.affine else None
    b = ctx.param(m.bias) if m.affine else None
    if m._stats is None:
        return ctx.normalise(x, 0, m.eps, w, b)
    stats = dict(m._own_buffers())
    scale = w if w is not None else ctx.constant(np.ones(c))
    shift = b if b is not None else ctx.constant(np.zeros(c))
    return ctx.node("BatchNormalization", [x, scale, shift, ctx.buffer("running_mean", stats["running_mean"]),
                                           ctx.buffer("running_var", stats["running_var"])], epsilon=m.eps)


def _repr(m: BatchNorm1d) -> str:
    return (f"{m.num_features}, eps={m.eps}, momentum={m.momentum}, affine={m.affine}, "
            f"track_running_stats={m.track_running_stats}")


def _to_torch(m: BatchNorm1d, torch, convert):
    out = torch.nn.BatchNorm1d(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                               track_running_stats=m.track_running_stats, dtype=registry.torch_dtype(torch, m.dtype))
    with torch.no_grad():
        if m.affine:
            out.weight.copy_(torch.from_numpy(m.weight._read()))
            out.bias.copy_(torch.from_numpy(m.bias._read()))
        for name, value in m._own_buffers():
            getattr(out, name).copy_(torch.from_numpy(np.asarray(value)))
    return out


def _from_torch(t, torch, convert) -> BatchNorm1d:
    ref = t.weight if t.weight is not None else t.running_mean
    dtype = registry.numpy_dtype(torch, ref, "BatchNorm1d") if ref is not None else np.float32
    m = BatchNorm1d(t.num_features, eps=t.eps, momentum=t.momentum, affine=t.affine,
                    track_running_stats=t.running_mean is not None, dtype=dtype)
    if t.affine:
        m.weight.data = t.weight.detach().cpu().numpy()
        m.bias.data = t.bias.detach().cpu().numpy()
    if t.running_mean is not None:
        for name in _BUFFERS:
            m._assign(name, getattr(t, name).detach().cpu().numpy())
    return m


registry.register(registry.Layer(
    BatchNorm1d,
    describe=lambda m, ctx: {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum,
                             "affine": m.affine, "track_running_stats": m.track_running_stats},
    build=lambda d, ctx, path: BatchNorm1d(d["num_features"], eps=d["eps"], momentum=d["momentum"],
                                           affine=d["affine"], track_running_stats=d["track_running_stats"],
                                           dtype=ctx.dtype),
    lower=_lower,
    features=lambda m, width: (m.num_features, m.num_features),
    repr=_repr,
    torch=registry.TorchTwin(("BatchNorm1d",), _to_torch, _from_torch),
    onnx=_onnx,
))
