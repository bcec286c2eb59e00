"""Metrics and output transforms, the one place that computes them: accuracy, class
probabilities, regression metrics and the per-epoch logs built from them. The Trainer, the
scikit-learn estimators and the command line all call these.

Shapes: ``out`` is the raw network output (n, outputs) (logits for classification); ``y`` is
int class ids (n,) for cross-entropy, else targets (n, outputs). Loss values themselves come
from the core (one pass with the gradient, or ``Network.evaluate``), never from here.
"""

from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["accuracy", "correct_count", "log_probabilities", "output_logs", "probabilities", "r2_score",
           "regression_metrics", "running_logs"]

_CE = _core.LossKind.cross_entropy
_MSE = _core.LossKind.mse


def correct_count(out: np.ndarray, y: np.ndarray) -> int:
    """Rows whose arg-max output is the class id ``y`` (cross-entropy)."""
    return int(np.count_nonzero(np.argmax(out, axis=1) == y))


def accuracy(loss_kind, out: np.ndarray, y: np.ndarray, subset: bool = False) -> float:
    """CE: share of rows whose arg-max logit is the label. BCE: share of elements where
    (logit > 0) == (target > 0.5) (Keras' binary accuracy, element-wise for several outputs);
    with ``subset`` the share of rows where every output is right (scikit-learn's multilabel
    accuracy)."""
    if loss_kind == _CE:
        return correct_count(out, y) / out.shape[0]
    hits = (out > 0) == (y > 0.5)
    return float(np.mean(np.all(hits, axis=1) if subset else hits))


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    """log(1 / (1 + exp(-z))), stable for any z (no overflow on either side)."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = -np.log1p(np.exp(-z[pos]))
    zn = z[~pos]
    out[~pos] = zn - np.log1p(np.exp(zn))
    return out


def probabilities(loss_kind, logits: np.ndarray) -> np.ndarray:
    """Softmax over each row (cross-entropy: rows sum to 1) or a sigmoid per element (BCE), in
    the dtype of ``logits``. ValueError for MSE (no probabilities)."""
    if loss_kind == _MSE:
        raise ValueError("predict_proba: needs a classification loss (CrossEntropyLoss or BCEWithLogitsLoss), "
                         "the trainer uses MSELoss; use predict")
    if loss_kind == _CE:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    out = np.empty_like(logits)
    pos = logits >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-logits[pos]))
    ez = np.exp(logits[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def log_probabilities(loss_kind, logits: np.ndarray) -> np.ndarray:
    """log of :func:`probabilities`, computed stably from the logits (log-softmax, log-sigmoid)."""
    if loss_kind == _MSE:
        raise ValueError("predict_log_proba: needs a classification loss (CrossEntropyLoss or BCEWithLogitsLoss)")
    if loss_kind == _CE:
        z = logits - logits.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return _log_sigmoid(logits)


def r2_score(out: np.ndarray, y: np.ndarray) -> float:
    """Mean over output columns of 1 - SS_res / SS_tot, as sklearn.metrics.r2_score with
    multioutput='uniform_average' (a constant column scores 1.0 when predicted exactly, else 0.0).
    Computed in float64."""
    d = out.astype(np.float64) - y
    ss_res = np.sum(d * d, axis=0)
    yc = y - y.mean(axis=0)
    ss_tot = np.sum(yc * yc, axis=0)
    safe = np.where(ss_tot > 0, ss_tot, 1.0)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / safe, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


def regression_metrics(out: np.ndarray, y: np.ndarray) -> dict:
    """{"mse", "mae", "r2"} over all elements (r2 per column, averaged); float64."""
    d = out.astype(np.float64) - y
    return {"mse": float(np.mean(d * d)), "mae": float(np.mean(np.abs(d))), "r2": r2_score(out, y)}


def running_logs(loss_kind, loss: float, correct: int, rows: int) -> dict:
    """An epoch's training logs from what training measured anyway: "loss" (mean batch loss),
    plus "accuracy" for cross-entropy (each batch's arg-max hits before its update) or "mse"
    (= "loss") for MSE; nothing more for BCE."""
    logs = {"loss": loss}
    if loss_kind == _CE:
        logs["accuracy"] = correct / rows
    elif loss_kind == _MSE:
        logs["mse"] = loss
    return logs


def output_logs(loss_kind, loss: float, out: np.ndarray, y: np.ndarray) -> dict:
    """{"loss", "accuracy"} for CE / BCE, {"loss", "mse", "mae", "r2"} for MSE, from eval-mode
    outputs ``out`` and the loss the core computed on them."""
    logs = {"loss": float(loss)}
    if loss_kind == _MSE:
        logs.update(regression_metrics(out, y))
    else:
        logs["accuracy"] = accuracy(loss_kind, out, y)
    return logs
