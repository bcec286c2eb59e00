"""Losses: PyTorch's names, defaults and semantics (so PyTorch is their oracle), mean reduction,
optional per-sample weights. ``loss(pred, target, sample_weight=None)`` returns a Python float and
computes the gradient in the same C++ pass; ``loss.backward()`` returns d(loss)/d(pred) for the
last call.

Classification (logits in, stable for any logit):

- ``CrossEntropyLoss(weight=None, label_smoothing=0.0)``: softmax cross-entropy; target = int
  class ids (B,). ``weight`` (C,) class weights: the mean divides by the sum of the target
  classes' weights, as PyTorch; ``label_smoothing`` in [0, 1], together with ``weight`` as PyTorch.
- ``BCEWithLogitsLoss(pos_weight=None)``: binary cross-entropy on logits; target in [0, 1] shaped
  like pred; ``pos_weight`` (C,) weighs the positive term of each output column.

Regression (target shaped like pred; (B,) accepted for one output column):

- ``MSELoss``: (pred - target)^2.   ``L1Loss``: |pred - target|.
- ``HuberLoss(delta=1.0)``: quadratic below delta, linear above (delta > 0).
- ``SmoothL1Loss(beta=1.0)``: Huber / beta (beta >= 0; beta = 0 is L1Loss).
- ``PoissonNLLLoss(log_input=True, full=False, eps=1e-8)``: exp(pred) - target * pred for
  log-rate predictions (log_input=False: pred - target * log(pred + eps)); ``full`` adds the
  Stirling term of log(target!) for target > 1.

Mean and sample weights. A batch's loss is ``sum_r w_r v_r / sum_r w_r n_r`` over its rows r:
v_r is the row's loss summed over its columns (for cross-entropy, its class-weighted, smoothed
term), n_r is the number of columns (element-wise losses) or the target class's weight
(cross-entropy; 1 without ``weight``). Without ``sample_weight`` (w_r = 1) that is PyTorch's
``reduction="mean"``; with it, PyTorch's ``reduction="none"`` loss times w summed over
``sum(w n)`` — for one output, scikit-learn's ``np.average(loss, weights=w)``. Weights are
finite reals (negative ones are allowed, as in PyTorch and scikit-learn's MLP); a batch whose
``sum(w n)`` is 0 has loss 0 and gradient 0 (PyTorch would give nan), and rows of weight 0
contribute nothing.

scikit-learn's losses from these (what ``MLPRegressor`` / ``MLPClassifier`` report, per batch,
with k outputs; the gradients scale the same way):

- squared_error = MSELoss / 2 (half the squared error, averaged over the outputs; its gradient,
  pred - target summed over the outputs, is MSELoss's gradient times k / 2);
- poisson = PoissonNLLLoss(log_input=True) * k + average_w(sum over outputs of
  xlogy(t, t) - t): scikit-learn's half Poisson deviance with the log link (its output
  activation is exp), which is PyTorch's Poisson NLL plus that constant. There is no extra
  factor 1/2: the deviance is 2 * (t log(t / mu) - t + mu), and its half is the NLL + constant.
- log_loss (softmax) = CrossEntropyLoss; binary / multilabel log_loss = BCEWithLogitsLoss * k.

Class ids must be integers in [0, C) (a one-hot (B, C) target is refused with a hint to pass
``y.argmax(axis=1)``); pred must have at least one column; NaN / Inf are refused unless
``mlpcore.set_check_finite(False)``. Bad parameters (delta <= 0, beta < 0, label_smoothing
outside [0, 1], a weight vector whose length is not the number of outputs) raise ValueError
naming the parameter. Losses pickle and deep-copy with their parameters.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from .nn.parameter import input_dtype

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "MSELoss", "PoissonNLLLoss",
           "SmoothL1Loss"]


class _Loss:
    """Base of the losses: ``kind`` (the core's LossKind), ``spec`` (the core's LossSpec: the loss
    with its parameters, validated once, what the compiled path is handed), ``reduction``."""

    kind = _core.LossKind.mse
    name = "loss"
    # (parameter, default) pairs of the constructor beyond reduction, named as LossSpec's keywords
    # and properties: repr shows the ones that differ from their default.
    _params: tuple = ()

    def __init__(self, reduction: str = "mean", **params):
        if reduction != "mean":
            raise ValueError(f"reduction: only 'mean' is supported (sample_weight weighs rows), got {reduction!r}")
        self.reduction = reduction
        for name, _ in self._params:
            setattr(self, name, params[name])
        self._build()

    def _build(self) -> None:
        """The core's LossSpec from the parameters (validated there); the parameters then read back
        as validated (floats, float64 weight vectors)."""
        self.spec = _core.LossSpec(self.kind, **{name: getattr(self, name) for name, _ in self._params})
        for name, _ in self._params:
            setattr(self, name, getattr(self.spec, name))
        self._grad = None

    def __call__(self, pred: np.ndarray, target: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
        return self.forward(pred, target, sample_weight)

    def forward(self, pred: np.ndarray, target: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
        """Mean loss of pred (B, C) against target; sample_weight (B,) weighs the rows (see the
        module docstring). The gradient is kept for ``backward``."""
        value, self._grad = _core.loss_forward_backward(self.spec, pred, target, input_dtype(pred), sample_weight)
        return float(value)

    def backward(self) -> np.ndarray:
        """d(loss)/d(pred) of the last call, shape of pred (a fresh array each call)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss was computed")
        return self._grad.copy()

    def __repr__(self) -> str:
        shown = []
        for name, default in self._params:
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                shown.append(f"{name}={v.tolist()!r}")
            elif v != default:
                shown.append(f"{name}={v!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("spec", None)  # the core object is rebuilt from the parameters
        state.pop("_grad", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build()


class MSELoss(_Loss):
    """Mean squared error (pred - target)^2, PyTorch's MSELoss."""

    kind = _core.LossKind.mse
    name = "mse"


class L1Loss(_Loss):
    """Mean absolute error |pred - target| (gradient sign(pred - target), 0 at equality), PyTorch's L1Loss."""

    kind = _core.LossKind.l1
    name = "l1"


class HuberLoss(_Loss):
    """PyTorch's HuberLoss: d^2/2 where |d| < delta, else delta (|d| - delta/2); delta > 0."""

    kind = _core.LossKind.huber
    name = "huber"
    _params = (("delta", 1.0),)

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction, delta=delta)


class SmoothL1Loss(_Loss):
    """PyTorch's SmoothL1Loss: d^2 / (2 beta) where |d| < beta, else |d| - beta/2; beta >= 0
    (beta = 0 is L1Loss)."""

    kind = _core.LossKind.smooth_l1
    name = "smooth_l1"
    _params = (("beta", 1.0),)

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction, beta=beta)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits (B, C) against int class ids (B,), PyTorch's
    CrossEntropyLoss: ``weight`` (C,) class weights (the mean divides by the sum of the target
    classes' weights), ``label_smoothing`` in [0, 1] (the target becomes (1 - ε) onehot + ε / C,
    with ``weight`` as PyTorch combines them)."""

    kind = _core.LossKind.cross_entropy
    name = "cross_entropy"
    _params = (("weight", None), ("label_smoothing", 0.0))

    def __init__(self, weight=None, *, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction, weight=weight, label_smoothing=label_smoothing)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, PyTorch's BCEWithLogitsLoss: targets in [0, 1] shaped like
    the logits; ``pos_weight`` (C,) multiplies the positive term of each output column."""

    kind = _core.LossKind.bce_with_logits
    name = "bce_with_logits"
    _params = (("pos_weight", None),)

    def __init__(self, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction, pos_weight=pos_weight)


class PoissonNLLLoss(_Loss):
    """PyTorch's PoissonNLLLoss: exp(pred) - target * pred (``log_input``: pred is the log-rate),
    else pred - target * log(pred + eps); ``full`` adds the Stirling approximation of
    log(target!) for target > 1. scikit-learn's ``loss='poisson'`` (half Poisson deviance, log
    link) is this with log_input=True plus a constant of the targets (module docstring)."""

    kind = _core.LossKind.poisson_nll
    name = "poisson_nll"
    _params = (("log_input", True), ("full", False), ("eps", 1e-8))

    def __init__(self, log_input: bool = True, full: bool = False, *, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__(reduction, log_input=log_input, full=full, eps=eps)
