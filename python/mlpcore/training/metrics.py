"""Metrics and output transforms, the one place that computes them: accuracy, class
probabilities, regression metrics, precision / recall / F1 / ROC AUC, and the per-epoch logs
built from them. The Trainer, the scikit-learn estimators and the command line all call these.

Shapes: ``out`` is the raw network output (n, outputs) (logits for classification); ``y`` is
int class ids (n,) for cross-entropy, else targets (n, outputs); ``sample_weight`` (n,) or None
weighs the rows as scikit-learn's metrics do (``sum(w * metric_r) / sum(w)``; nan when the
weights sum to 0). Loss values themselves come from the core (one pass with the gradient, or
``Network.evaluate``), never from here.

Which metrics a loss gets by default: classification losses (cross-entropy, BCE) "accuracy";
losses whose outputs predict the targets (MSE, L1, Huber, SmoothL1) "mse", "mae", "r2"; Poisson
NLL (its outputs are log-rates) none besides the loss.

Named metrics (``Trainer(metrics=[...])``), each equal to ``sklearn.metrics``' function on the
same predictions (and the same ``sample_weight``):

- "accuracy": the share of right arg-max classes (CE), or of right elements (BCE, logit > 0);
- "precision", "recall", "f1": binary (positive class 1) for CE with 2 classes and for BCE with
  one output; otherwise the macro average — over the classes present in the labels or the
  predictions for CE (sklearn's ``average="macro"``), over the outputs for multi-label BCE; an
  undefined ratio counts 0 (sklearn's ``zero_division``);
- "roc_auc": from the probabilities (softmax / sigmoid): binary for CE with 2 classes and BCE
  with one output, else one-vs-rest macro (CE: ``multi_class="ovr"``; BCE: per output); NaN where
  a class has no positive or no negative row (sklearn raises there);
- "mse", "mae", "r2": regression (the losses whose outputs predict the targets).

A callable ``fn(y_true, out) -> float`` is a metric too, named by its ``__name__``; it gets the
raw outputs (and no sample weights).
"""

from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["METRICS", "accuracy", "compute", "correct_count", "epoch_logs", "eval_logs", "log_probabilities",
           "output_logs",
           "precision_recall_f1", "probabilities", "r2_score", "regression_metrics", "resolve", "roc_auc",
           "running_logs"]

_K = _core.LossKind
_CE = _K.cross_entropy
_MSE = _K.mse
CLASSIFICATION = frozenset({_K.cross_entropy, _K.bce_with_logits})
REGRESSION = frozenset({_K.mse, _K.l1, _K.huber, _K.smooth_l1})

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mse", "mae", "r2")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


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


def epoch_logs(loss_kind, resolved, loss: float, correct: int, rows: int, outputs, y: np.ndarray) -> dict:
    """An epoch's training logs from what it measured: the loss, and the metrics running over the
    epoch: the default ones (``running_logs``), or the ``resolve``-d ones from the batches'
    training outputs (rows unweighted, as the running accuracy; ``y`` in the rows' visiting
    order). outputs None: only what training counts anyway (CE accuracy)."""
    if resolved is None:
        return running_logs(loss_kind, loss, correct, rows)
    if outputs is None:
        return {"loss": loss, **({"accuracy": correct / rows} if resolved else {})}
    return {"loss": loss, **compute(loss_kind, resolved, outputs, y)}


def eval_logs(loss_kind, resolved, loss: float, out: np.ndarray, y: np.ndarray, sample_weight=None) -> dict:
    """The logs of eval-mode outputs: the default ones (``output_logs``) or "loss" and the
    ``resolve``-d metrics."""
    if resolved is None:
        return output_logs(loss_kind, loss, out, y, sample_weight)
    return {"loss": float(loss), **compute(loss_kind, resolved, out, y, sample_weight)}


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


# ------------------------------------------------------------------------------------------------
# named metrics (Trainer(metrics=[...]))
# ------------------------------------------------------------------------------------------------

def resolve(metrics, loss_kind) -> list | None:
    """[(name, fn or None)] for ``Trainer(metrics=...)`` (None: the default logs); fn is None for a
    named metric. ValueError for an unknown name or one that does not fit the loss, TypeError for
    anything else."""
    if metrics is None:
        return None
    if isinstance(metrics, (str, bytes)) or callable(metrics):
        metrics = [metrics]
    try:
        items = list(metrics)
    except TypeError:
        raise TypeError(f"metrics: expected a list of metric names or callables, got {type(metrics).__name__}") from None
    out, names = [], set()
    for i, m in enumerate(items):
        if isinstance(m, str):
            if m not in METRICS:
                raise ValueError(f"metrics[{i}]: unknown metric {m!r}; expected one of {', '.join(METRICS)} "
                                 "or a callable fn(y_true, out) -> float")
            wanted = CLASSIFICATION if m in CLASSIFICATION_METRICS else REGRESSION
            if loss_kind not in wanted:
                raise ValueError(f"metrics[{i}]: {m!r} is a "
                                 f"{'classification' if m in CLASSIFICATION_METRICS else 'regression'} metric, but the "
                                 f"loss ({loss_kind.name}) is not a "
                                 f"{'classification' if m in CLASSIFICATION_METRICS else 'regression'} loss")
            name, fn = m, None
        elif callable(m):
            name, fn = getattr(m, "__name__", None) or f"metric_{i}", m
        else:
            raise TypeError(f"metrics[{i}]: expected a metric name or a callable, got {type(m).__name__}")
        if name in names or name == "loss":
            raise ValueError(f"metrics[{i}]: the name {name!r} appears twice (or is 'loss')")
        names.add(name)
        out.append((name, fn))
    return out


def _ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks of ``a`` with ties given their average rank (scipy.stats.rankdata)."""
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    first = np.r_[True, s[1:] != s[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(s.size)
    ranks[order] = avg[group]
    return ranks


def _binary_auc(y: np.ndarray, score: np.ndarray, sample_weight=None) -> float:
    """Area under the ROC curve of binary labels y (bool) for ``score``: the Mann-Whitney
    statistic with ties counted half (what sklearn's trapezoids give); with ``sample_weight``, each
    (positive, negative) pair counts w_pos * w_neg. NaN with one class."""
    if sample_weight is None:
        pos = int(np.count_nonzero(y))
        neg = y.size - pos
        if pos == 0 or neg == 0:
            return float("nan")
        r = _ranks(np.asarray(score, dtype=np.float64))
        return float((r[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))
    w = np.asarray(sample_weight, dtype=np.float64)
    wp, wn = np.where(y, w, 0.0), np.where(y, 0.0, w)
    if wp.sum() == 0 or wn.sum() == 0:
        return float("nan")
    order = np.argsort(np.asarray(score, dtype=np.float64), kind="mergesort")
    s = np.asarray(score, dtype=np.float64)[order]
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1      # tie group of each sorted row
    neg_in = np.bincount(group, weights=wn[order])            # negative weight per tie group
    neg_below = np.cumsum(neg_in) - neg_in                    # negative weight in lower groups
    credit = neg_below[group] + 0.5 * neg_in[group]           # per sorted row, if it is positive
    return float(np.dot(wp[order], credit) / (wp.sum() * wn.sum()))


def roc_auc(loss_kind, out: np.ndarray, y: np.ndarray, sample_weight=None) -> float:
    """ROC AUC as the module docs say (from the probabilities of ``out``)."""
    prob = probabilities(loss_kind, out)
    w = sample_weight
    if loss_kind == _CE:
        if prob.shape[1] == 2:
            return _binary_auc(y == 1, prob[:, 1], w)
        return float(np.mean([_binary_auc(y == k, prob[:, k], w) for k in range(prob.shape[1])]))
    yb = y > 0.5
    return float(np.mean([_binary_auc(yb[:, k], prob[:, k], w) for k in range(prob.shape[1])]))


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple:
    """Per-class precision, recall, F1 (0 where undefined: sklearn's zero_division)."""
    def ratio(num, den):  # counts may be weighted (fractional): divide only where den > 0
        return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)

    return ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn)


def precision_recall_f1(loss_kind, out: np.ndarray, y: np.ndarray, sample_weight=None) -> dict:
    """{"precision", "recall", "f1"} as the module docs say (binary or macro)."""
    if loss_kind == _CE:
        pred = np.argmax(out, axis=1)
        if out.shape[1] == 2:
            classes = np.array([1])
        else:
            classes = np.union1d(np.unique(y), np.unique(pred))
        t, q = y[:, None] == classes[None, :], pred[:, None] == classes[None, :]
    else:
        t, q = y > 0.5, out > 0
    w = np.ones(t.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    tp, fp, fn = w @ (t & q), w @ (~t & q), w @ (t & ~q)  # (weighted) counts per class / output
    p, r, f = _prf(tp, fp, fn)
    return {"precision": float(np.mean(p)), "recall": float(np.mean(r)), "f1": float(np.mean(f))}


def compute(loss_kind, resolved: list, out: np.ndarray, y: np.ndarray, sample_weight=None) -> dict:
    """The metrics ``resolved`` (from :func:`resolve`) of outputs ``out`` against ``y``, rows weighted
    by ``sample_weight`` (callables get no weights)."""
    logs: dict = {}
    prf = reg = None
    for name, fn in resolved:
        if fn is not None:
            logs[name] = float(fn(y, out))
        elif name == "accuracy":
            logs[name] = accuracy(loss_kind, out, y, sample_weight=sample_weight)
        elif name == "roc_auc":
            logs[name] = roc_auc(loss_kind, out, y, sample_weight)
        elif name in ("precision", "recall", "f1"):
            prf = prf or precision_recall_f1(loss_kind, out, y, sample_weight)
            logs[name] = prf[name]
        else:
            reg = reg or regression_metrics(out, y, sample_weight)
            logs[name] = reg[name]
    return logs


def free_with_training(loss_kind, resolved: list) -> bool:
    """True when training measures ``resolved`` anyway (only "accuracy" with cross-entropy: the
    arg-max hits the core counts), so no outputs need to be kept."""
    return all(fn is None and name == "accuracy" and loss_kind == _CE for name, fn in resolved)
