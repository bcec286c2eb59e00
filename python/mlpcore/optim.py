"""Optimizers, with PyTorch's semantics, running in C++ over the flat parameter arena.

The Python object holds a C++ optimizer whose segments point at the parameters' memory: a
model gathered into one arena (any Sequential) is updated in one pass. The compiled training
path drives this same C++ object, so both paths update identically.

Create the optimizer after ``model.to(device)``: moving parameters to another arena makes an
existing optimizer refuse to step (RuntimeError) instead of silently updating stale memory.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from . import _core
from ._validate import positive
from .nn import _ALIGN, Parameter, _zero_grads


def _segments(params: list) -> list:
    """(arena, offset, numel) runs: parameters adjacent in one arena (up to alignment padding,
    which stays zero) merge into one segment."""
    order = sorted(params, key=lambda p: (id(p._arena), p._offset))
    segs = []
    for p in order:
        if segs and segs[-1][0] is p._arena and 0 <= p._offset - (segs[-1][1] + segs[-1][2]) < _ALIGN:
            a, off, _ = segs[-1]
            segs[-1] = (a, off, p._offset + p.numel - off)
        else:
            segs.append((p._arena, p._offset, p.numel))
    return segs


class Optimizer:
    def __init__(self, params: Iterable[Parameter], p: "_core.OptimParams"):
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError("params: pass model.parameters(), not the model")
        self.params = list(params)
        if not self.params:
            raise ValueError("params: the optimizer got an empty parameter list")
        for i, q in enumerate(self.params):
            if not isinstance(q, Parameter):
                raise TypeError(f"params[{i}]: expected a mlpcore Parameter, got {type(q).__name__}")
        uniq = list({id(q): q for q in self.params}.values())
        self.params = uniq
        # The arenas themselves, not their id(): a freed arena's id can be reused by a new one,
        # which would let a stale optimizer pass the check (holding them keeps ids unique too).
        self._layout = [(q._arena, q._offset) for q in uniq]
        self._core = _core.Optimizer(p, _segments(uniq))

    def _check_layout(self) -> None:
        if any(q._arena is not a or q._offset != off for q, (a, off) in zip(self.params, self._layout)):
            raise RuntimeError(
                f"{type(self).__name__}: the parameters moved (model.to(...) or a new Sequential) since the "
                "optimizer was created; create the optimizer after moving the model"
            )

    def step(self) -> None:
        """One update of every parameter from its current .grad."""
        self._check_layout()
        self._core.step()

    def zero_grad(self) -> None:
        """Set the gradients to zero: one fill per arena holding these parameters."""
        _zero_grads(self.params)

    @property
    def lr(self) -> float:
        return self._core.params.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._core.set_lr(positive("lr", value))

    @property
    def step_count(self) -> int:
        return self._core.params.step

    def state_dict(self) -> dict:
        """Hyper-parameters, step count and the flat state (momentum / moments) as numpy."""
        p = self._core.params
        hp = {k: getattr(p, k) for k in ("lr", "momentum", "weight_decay", "nesterov", "beta1", "beta2", "eps",
                                         "alpha", "centered")}
        return {"type": type(self).__name__, "hyper": hp, "step": p.step, "state": self._core.read_state()}

    def load_state_dict(self, sd: dict) -> None:
        if not isinstance(sd, dict) or not {"type", "hyper", "step", "state"} <= set(sd):
            raise TypeError("state_dict: expected a dict with keys 'type', 'hyper', 'step', 'state' "
                            f"(from Optimizer.state_dict()), got {type(sd).__name__}")
        if sd.get("type") != type(self).__name__:
            raise ValueError(f"optimizer state is for {sd.get('type')!r}, not {type(self).__name__}")
        p = self._core.params
        for k, v in sd["hyper"].items():
            if not hasattr(p, k) or k in ("kind", "step"):
                raise ValueError(f"state_dict['hyper']: unknown hyper-parameter {k!r}")
            if k in ("lr", "eps"):
                v = positive(f"state_dict['hyper'][{k!r}]", v)
            elif k in ("momentum", "weight_decay", "beta1", "beta2", "alpha"):
                v = positive(f"state_dict['hyper'][{k!r}]", v, allow_zero=True)
            setattr(p, k, type(getattr(p, k))(v))
        self._core.params = p
        self._core.write_state(np.asarray(sd["state"]), int(sd["step"]))

    def __repr__(self) -> str:
        p = self._core.params
        return f"{type(self).__name__}(lr={p.lr}, momentum={p.momentum}, weight_decay={p.weight_decay})"


class SGD(Optimizer):
    """SGD with momentum (PyTorch: first buffer = gradient, no dampening), Nesterov and L2
    weight decay added to the gradient before momentum."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        p = _core.OptimParams()
        p.kind = _core.OptimKind.sgd
        p.lr = positive("lr", lr)
        p.momentum = positive("momentum", momentum, allow_zero=True)
        p.weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and p.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum requires momentum > 0")
        p.nesterov = bool(nesterov)
        super().__init__(params, p)


def _betas(betas) -> tuple:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}") from None
    for i, b in enumerate((b1, b2)):
        if not (isinstance(b, (int, float, np.floating)) and 0.0 <= b < 1.0):
            raise ValueError(f"betas[{i}]: expected a value in [0, 1), got {b!r}")
    return float(b1), float(b2)


class Adam(Optimizer):
    """Adam (L2 weight decay added to the gradient, as torch.optim.Adam)."""

    _kind = _core.OptimKind.adam

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        p = _core.OptimParams()
        p.kind = self._kind
        p.lr = positive("lr", lr)
        p.beta1, p.beta2 = _betas(betas)
        p.eps = positive("eps", eps)
        p.weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
        super().__init__(params, p)


class AdamW(Adam):
    """AdamW: decoupled weight decay, p *= 1 - lr * weight_decay (torch.optim.AdamW)."""

    _kind = _core.OptimKind.adamw

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop (alpha smoothing, eps outside the sqrt, optional
    momentum and centered variant)."""

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        p = _core.OptimParams()
        p.kind = _core.OptimKind.rmsprop
        p.lr = positive("lr", lr)
        if not (isinstance(alpha, (int, float, np.floating)) and 0.0 <= alpha < 1.0):
            raise ValueError(f"alpha: expected a value in [0, 1), got {alpha!r}")
        p.alpha = float(alpha)
        p.eps = positive("eps", eps)
        p.weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
        p.momentum = positive("momentum", momentum, allow_zero=True)
        p.centered = bool(centered)
        super().__init__(params, p)
