"""scikit-learn's stochastic solvers ('sgd', 'adam') on the core: scikit-learn's loop (loss_curve_,
tol / n_iter_no_change, early stopping, learning-rate schedules) around the Trainer's epoch runner,
one C++ call per epoch of shuffled mini-batches. See ``mlpcore.sklearn`` for how scikit-learn's
update rule maps onto the core's optimizers."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from .. import _core
from ..optim import SGD, Adam
from ..training.trainer import Trainer

_NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be "
    "preprocessed."
)


def make_optimizer(est) -> None:
    """A fresh core optimizer over the estimator's parameters (its hyper-parameters are set per fit
    by :func:`configure_optimizer`)."""
    params = est._model.parameters()
    if est.solver == "sgd":
        est._optimizer = SGD(
            params, lr=1.0, momentum=float(est.momentum), nesterov=bool(est.nesterovs_momentum) and est.momentum > 0
        )
    else:
        est._optimizer = Adam(params, lr=1.0, betas=(float(est.beta_1), float(est.beta_2)), eps=1.0)
    est._learning_rate = float(est.learning_rate_init)  # scikit-learn's current learning rate


def configure_optimizer(est, l2_rows: float) -> None:
    """Map scikit-learn's (learning rate, alpha, epsilon) onto the core optimizer, undoing the loss
    gain c (see ``mlpcore.sklearn``). ``l2_rows``: what scikit-learn divides alpha by in a batch
    (its row count, or its sum of sample weights)."""
    c = est._loss_gain
    p = est._optimizer._core.params
    p.weight_decay = c * float(est.alpha) / l2_rows
    if est.solver == "sgd":
        p.lr = est._learning_rate / c
    else:
        p.lr = est._learning_rate
        p.eps = float(est.epsilon) * c
        p.beta1, p.beta2 = float(est.beta_1), float(est.beta_2)
    est._optimizer._core.params = p


def _batch_size(est, n: int) -> int:
    if est.batch_size == "auto":
        return min(200, n)
    if est.batch_size > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
    return int(np.clip(est.batch_size, 1, n))


def _epoch_constant(consts: np.ndarray, W, batch_size: int, shuffle: bool, seed: int) -> float:
    """What the per-row loss constants add to an epoch's loss in scikit-learn's accounting: each
    batch's weighted mean, averaged over the batches with their row counts (the mean over all rows
    without weights; with weights it depends on which rows share a batch, so the batches are
    formed as the epoch formed them)."""
    if W is None:
        return float(np.mean(consts))
    n = consts.shape[0]
    order = _core.permutation(n, seed) if shuffle else np.arange(n)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        w = W[idx].astype(np.float64)
        s = w.sum()
        total += (float(w @ consts[idx]) / s if s != 0 else 0.0) * len(idx)
    return total / n


def fit_stochastic(est, X, Y: np.ndarray, y_orig, sample_weight, rng, incremental: bool) -> None:
    """One fit (or one ``partial_fit`` epoch) with scikit-learn's stochastic solver rules.

    X (n, features) as scikit-learn checked it; Y encoded for the core; y_orig the targets as given
    (the validation score reads them); sample_weight (n,) or None; rng: the fit's random state
    (validation split, shuffles). A training loss that turns non-finite raises ValueError
    (scikit-learn's message) unless early stopping is on: then the epoch's loss and validation
    score are recorded (scikit-learn records them too), training stops with a ConvergenceWarning
    and the best weights are restored (scikit-learn keeps iterating on the non-finite weights up to
    max_iter, recording NaN scores, and then restores them)."""
    spec = est._loss_spec()
    est._loss_gain = spec.gain
    if not hasattr(est, "_no_improvement_count"):
        est._init_stochastic_attributes()
    if est._optimizer is None or not incremental:
        make_optimizer(est)
    trainer = Trainer(est._model, loss=spec.loss, optimizer=est._optimizer)
    # the one input path: C-contiguous features in the network's dtype, targets in the core's
    # format, scanned once here; the epochs read them without further checks
    X, Y = trainer._prepare(X, Y, trainer._net())
    W = trainer._prepare_weights(sample_weight, X.shape[0])
    early_stopping = bool(est.early_stopping)
    if early_stopping:
        # stratified for one output only (binary classification), as scikit-learn
        stratify = y_orig if (is_classifier(est) and est.n_outputs_ == 1) else None
        idx_train, idx_val = train_test_split(
            np.arange(X.shape[0]), random_state=rng, test_size=est.validation_fraction, stratify=stratify
        )
        if idx_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
            )
        val = (X[idx_val], y_orig[idx_val], None if sample_weight is None else sample_weight[idx_val])
        X, Y = X[idx_train], Y[idx_train]  # fancy indexing: fresh C-contiguous copies
        W = None if W is None else W[idx_train]
        if est.validation_scores_ is None:
            est.validation_scores_ = []
        if est.best_validation_score_ is None:
            est.best_validation_score_ = -np.inf
        best_params = est._model.state_dict()
    consts = est._loss_constants(Y)  # of the rows trained on
    n = X.shape[0]
    batch_size = _batch_size(est, n)
    n_batches = -(-n // batch_size)
    alpha = float(est.alpha)
    # scikit-learn divides a batch's L2 term by its sum of weights: the batch size times the mean
    # weight here (exact for one batch per epoch; the weights of a shuffled batch vary)
    l2_rows = batch_size * (float(np.mean(W, dtype=np.float64)) if W is not None else 1.0) or batch_size
    configure_optimizer(est, l2_rows)

    est.n_iter_ = 0
    for _ in range(est.max_iter):
        seed = int(rng.randint(2**31 - 1))  # a fresh shuffle per epoch, drawn from random_state
        # scikit-learn adds each batch's L2 term at the weights before its update: the epoch's first
        # weights (exact with one batch per epoch)
        sq_norm = est._weights_sq_norm() if alpha > 0 else 0.0
        try:
            r = trainer._run_epoch(X, Y, batch_size, bool(est.shuffle), seed, est.n_iter_,
                                   check_finite=not early_stopping, sample_weight=W)
        except RuntimeError as e:
            if "non-finite" not in str(e):
                raise
            raise ValueError(f"{_NON_FINITE} ({e})") from None
        epoch_loss = spec.value_scale * r.loss
        if consts is not None:
            epoch_loss += _epoch_constant(consts, W, batch_size, bool(est.shuffle), seed)
        if alpha > 0:
            epoch_loss += 0.5 * alpha * sq_norm * n_batches * batch_size / (n * l2_rows)
        est.n_iter_ += 1
        est.loss_ = epoch_loss
        est.t_ += n
        est.loss_curve_.append(epoch_loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {epoch_loss:.8f}")

        # no-improvement count on the training loss or on the validation score (scikit-learn's rule)
        if early_stopping:
            score = est._validation_score(*val)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                best_params = est._model.state_dict()
            if not math.isfinite(epoch_loss):
                warnings.warn(
                    f"Training diverged at iteration {est.n_iter_} (loss = {epoch_loss}); stopped and restored "
                    f"the weights of the best validation score ({est.best_validation_score_}).",
                    ConvergenceWarning,
                )
                break
        else:
            if epoch_loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, epoch_loss)

        if est.solver == "sgd" and est.learning_rate == "invscaling":
            est._learning_rate = float(est.learning_rate_init) / (est.t_ + 1) ** float(est.power_t)
            configure_optimizer(est, l2_rows)

        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if early_stopping else "Training loss"
            msg = f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
            if est.solver == "sgd" and est.learning_rate == "adaptive" and est._learning_rate > 1e-6:
                est._learning_rate /= 5.0
                configure_optimizer(est, l2_rows)
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{msg} Setting learning rate to {est._learning_rate:f}")
            else:
                if est.verbose:
                    print(msg + " Stopping.")
                break
        if incremental:
            break
        if est.n_iter_ == est.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the optimization hasn't "
                "converged yet.",
                ConvergenceWarning,
            )
    if early_stopping:
        est._model.load_state_dict(best_params)
