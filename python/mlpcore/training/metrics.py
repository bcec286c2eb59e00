"""Metrics and output transforms, the one place that computes them: accuracy, class
probabilities, regression metrics and the per-epoch logs built from them. The Trainer, the
scikit-learn estimators and the command line all call these.

Shapes: ``out`` is the raw network output (n, outputs) (logits for classification); ``y`` is
int class ids (n,) for cross-entropy, else targets (n, outputs); ``sample_weight`` (n,) or None
weighs the rows as scikit-learn's metrics do (``sum(w * metric_r) / sum(w)``; nan when the
weights sum to 0). Loss values themselves come from the core (one pass with the gradient, or
``Network.evaluate``), never from here.

Which metrics a loss gets: classification losses (cross-entropy, BCE) "accuracy"; losses whose
outputs predict the targets (MSE, L1, Huber, SmoothL1) "mse", "mae", "r2"; Poisson NLL (its
outputs are log-rates) none besides the loss.
"""

from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["accuracy", "correct_count", "log_probabilities", "output_logs", "probabilities", "r2_score",
           "regression_metrics", "running_logs"]

_K = _core.LossKind
_CE = _K.cross_entropy
_MSE = _K.mse
CLASSIFICATION = frozenset({_K.cross_entropy, _K.bce_with_logits})
REGRESSION = frozenset({_K.mse, _K.l1, _K.huber, _K.smooth_l1})


def _average(values: np.ndarray, sample_weight) -> float:
    """Mean of values (n,) weighted by sample_weight (n,) (float64; nan when the weights sum to 0)."""
    if sample_weight is None:
        return float(np.mean(values))
    w = np.asarray(sample_weight, dtype=np.float64)
    total = float(np.sum(w))
    return float(np.dot(w, values) / total) if total != 0 else float("nan")


def correct_count(out: np.ndarray, y: np.ndarray) -> int:
    """Rows whose arg-max output is the class id ``y`` (cross-entropy)."""
    return int(np.count_nonzero(np.argmax(out, axis=1) == y))


def accuracy(loss_kind, out: np.ndarray, y: np.ndarray, subset: bool = False, sample_weight=None) -> float:
    """CE: share of rows whose arg-max logit is the label. BCE: share of elements where
    (logit > 0) == (target > 0.5) (Keras' binary accuracy, element-wise for several outputs);
    with ``subset`` the share of rows where every output is right (scikit-learn's multilabel
    accuracy). ``sample_weight`` weighs the rows."""
    if loss_kind == _CE:
        if sample_weight is None:
            return correct_count(out, y) / out.shape[0]
        return _average((np.argmax(out, axis=1) == y).astype(np.float64), sample_weight)
    hits = (out > 0) == (y > 0.5)
    if sample_weight is None:
        return float(np.mean(np.all(hits, axis=1) if subset else hits))
    per_row = np.all(hits, axis=1) if subset else np.mean(hits, axis=1)
    return _average(per_row.astype(np.float64), sample_weight)


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
    if loss_kind not in CLASSIFICATION:
        raise ValueError("predict_proba: needs a classification loss (CrossEntropyLoss or BCEWithLogitsLoss), "
                         f"the trainer's loss is {loss_kind.name}; use predict")
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
    if loss_kind not in CLASSIFICATION:
        raise ValueError("predict_log_proba: needs a classification loss (CrossEntropyLoss or BCEWithLogitsLoss)")
    if loss_kind == _CE:
        z = logits - logits.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return _log_sigmoid(logits)


def r2_score(out: np.ndarray, y: np.ndarray, sample_weight=None) -> float:
    """Mean over output columns of 1 - SS_res / SS_tot, as sklearn.metrics.r2_score with
    multioutput='uniform_average' (a constant column scores 1.0 when predicted exactly, else 0.0);
    ``sample_weight`` weighs the rows of both sums and of the mean of y. Computed in float64."""
    d = out.astype(np.float64) - y
    if sample_weight is None:
        ss_res = np.sum(d * d, axis=0)
        yc = y - y.mean(axis=0)
        ss_tot = np.sum(yc * yc, axis=0)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        total = float(np.sum(w))
        yc = y - ((w @ y) / total if total != 0 else 0.0)
        ss_res, ss_tot = w @ (d * d), w @ (yc * yc)
    safe = np.where(ss_tot > 0, ss_tot, 1.0)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / safe, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


def regression_metrics(out: np.ndarray, y: np.ndarray, sample_weight=None) -> dict:
    """{"mse", "mae", "r2"} over all elements (r2 per column, averaged); rows weighted by
    ``sample_weight``; float64."""
    d = out.astype(np.float64) - y
    if sample_weight is None:
        return {"mse": float(np.mean(d * d)), "mae": float(np.mean(np.abs(d))), "r2": r2_score(out, y)}
    return {"mse": _average(np.mean(d * d, axis=1), sample_weight),
            "mae": _average(np.mean(np.abs(d), axis=1), sample_weight),
            "r2": r2_score(out, y, sample_weight)}


def running_logs(loss_kind, loss: float, correct: int, rows: int) -> dict:
    """An epoch's training logs from what training measured anyway: "loss" (mean batch loss),
    plus "accuracy" for cross-entropy (each batch's arg-max hits before its update, counted over
    rows: not weighted by sample weights) or "mse" (= "loss") for MSE; nothing more for the
    other losses."""
    logs = {"loss": loss}
    if loss_kind == _CE:
        logs["accuracy"] = correct / rows
    elif loss_kind == _MSE:
        logs["mse"] = loss
    return logs


def output_logs(loss_kind, loss: float, out: np.ndarray, y: np.ndarray, sample_weight=None) -> dict:
    """{"loss", "accuracy"} for classification losses, {"loss", "mse", "mae", "r2"} for the
    regression losses whose outputs predict the targets, {"loss"} for Poisson NLL, from eval-mode
    outputs ``out`` and the loss the core computed on them; rows weighted by ``sample_weight``."""
    logs = {"loss": float(loss)}
    if loss_kind in REGRESSION:
        logs.update(regression_metrics(out, y, sample_weight))
    elif loss_kind in CLASSIFICATION:
        logs["accuracy"] = accuracy(loss_kind, out, y, sample_weight=sample_weight)
    return logs
