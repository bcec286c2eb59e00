"""Losses with mean reduction. ``loss(pred, target)`` returns a Python float and computes the
gradient in the same C++ pass; ``loss.backward()`` returns d(loss)/d(pred) for the last call.

- ``CrossEntropyLoss``: softmax cross-entropy from logits (stable log-sum-exp); target = int
  class ids of shape (B,).
- ``MSELoss``: mean of (pred - target)^2 over all elements; target shaped like pred ((B,) is
  accepted for a single output column).
- ``BCEWithLogitsLoss``: binary cross-entropy on logits, stable for any logit; target in [0, 1]
  shaped like pred.

Class ids must be integers in [0, C) (a one-hot (B, C) target is refused with a hint to pass
``y.argmax(axis=1)``); pred must have at least one column; NaN / Inf are refused unless
``mlpcore.set_check_finite(False)``. All three are stable for logits up to the dtype's range
(cross-entropy as log-sum-exp shifted by the row max, BCE as max(x, 0) - x t + log1p(exp(-|x|))).
"""

from __future__ import annotations

import numpy as np

from . import _core
from .nn.parameter import input_dtype


class _Loss:
    kind = _core.LossKind.mse
    name = "loss"

    def __init__(self, reduction: str = "mean"):
        if reduction != "mean":
            raise ValueError(f"reduction: only 'mean' is supported, got {reduction!r}")
        self.reduction = reduction
        self._grad = None

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        value, self._grad = _core.loss_forward_backward(self.kind, pred, target, input_dtype(pred))
        return float(value)

    def backward(self) -> np.ndarray:
        """d(loss)/d(pred) of the last call, shape of pred (a fresh array each call)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss was computed")
        return self._grad.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSELoss(_Loss):
    kind = _core.LossKind.mse
    name = "mse"


class CrossEntropyLoss(_Loss):
    kind = _core.LossKind.cross_entropy
    name = "cross_entropy"


class BCEWithLogitsLoss(_Loss):
    kind = _core.LossKind.bce_with_logits
    name = "bce_with_logits"
