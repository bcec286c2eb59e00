"""The losses against scikit-learn's MLP losses (sklearn/neural_network/_base.py) with sample
weights: the relations ``mlpcore.losses`` documents, which the estimators use to report
scikit-learn's ``loss_`` and to follow its gradient — value for value, and through a whole
backward pass (scikit-learn's ``_backprop`` on a network with our weights).

With k outputs and per-batch weights w (scikit-learn's np.average within a batch):
  squared_error = MSELoss / 2                     gradient = MSELoss's * k / 2
  poisson       = PoissonNLLLoss * k + c(y, w)    gradient = PoissonNLLLoss's * k
                  c = sum over outputs of average_w(xlogy(y, y) - y)
  log_loss      = CrossEntropyLoss (softmax)      gradient = the same
  binary        = BCEWithLogitsLoss * k           gradient = BCEWithLogitsLoss's * k
"""

import warnings

import mlpcore as mc
import numpy as np
import pytest

sk_base = pytest.importorskip("sklearn.neural_network._base")
from scipy.special import xlogy
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

K = 3


def _data(seed=0, n=12):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, K))
    w = rng.uniform(0.0, 2.0, n)
    w[::5] = 0.0
    return rng, z, w


def poisson_constant(y, w):
    return float(np.average(xlogy(y, y) - y, weights=w, axis=0).sum())


@pytest.mark.parametrize("weighted", [False, True])
def test_values_are_scikit_learns_up_to_the_documented_factors(weighted):
    rng, z, w = _data()
    w = w if weighted else None
    y = rng.standard_normal((12, K))
    assert mc.MSELoss()(z, y, w) / 2 == pytest.approx(sk_base.squared_loss(y, z, w), rel=1e-14)
    counts = rng.poisson(2.0, (12, K)).astype(np.float64)
    got = mc.PoissonNLLLoss()(z, counts, w) * K + poisson_constant(counts, w)
    assert got == pytest.approx(sk_base.poisson_loss(counts, np.exp(z), w), rel=1e-13)
    labels = rng.integers(0, K, 12)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert mc.CrossEntropyLoss()(z, labels, w) == pytest.approx(sk_base.log_loss(np.eye(K)[labels], p, w), rel=1e-13)
    t = rng.integers(0, 2, (12, K)).astype(np.float64)
    got = mc.BCEWithLogitsLoss()(z, t, w) * K
    assert got == pytest.approx(sk_base.binary_log_loss(t, 1 / (1 + np.exp(-z)), w), rel=1e-13)


def _sklearn_backprop(est, X, Y, w):
    """scikit-learn's loss and gradients of one batch (its _backprop), alpha = 0."""
    n_layers = est.n_layers_
    activations = [X] + [None] * (n_layers - 1)
    deltas = [None] * (n_layers - 1)
    coef_grads = [np.empty_like(c) for c in est.coefs_]
    intercept_grads = [np.empty_like(b) for b in est.intercepts_]
    return est._backprop(X, Y, w, activations, deltas, coef_grads, intercept_grads)


def _our_model(est):
    mods = []
    for i, (c, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        lin = mc.Linear(c.shape[0], c.shape[1], dtype=np.float64)
        lin.weight.data = c.T
        lin.bias.data = b
        mods.append(lin)
        if i < len(est.coefs_) - 1:
            mods.append(mc.Tanh())
    return mc.Sequential(*mods)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("loss_name", ["squared_error", "poisson", "log_loss", "binary"])
def test_a_backward_pass_gives_scikit_learns_loss_and_gradients(loss_name, weighted):
    rng, _, w = _data(1, n=20)
    w = w if weighted else None
    X = rng.standard_normal((20, 4))
    if loss_name in ("squared_error", "poisson"):
        Y = rng.standard_normal((20, K)) if loss_name == "squared_error" else rng.poisson(2.0, (20, K)) * 1.0
        est = MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", loss=loss_name, alpha=0.0, max_iter=1,
                           random_state=0)
        fit_y, Y2 = Y, Y
    else:
        labels = rng.integers(0, K, 20)
        est = MLPClassifier(hidden_layer_sizes=(6,), activation="tanh", alpha=0.0, max_iter=1, random_state=0)
        if loss_name == "log_loss":
            fit_y, Y2 = labels, np.eye(K)[labels]
        else:  # multilabel: one logistic output per column
            Y2 = rng.integers(0, 2, (20, K))
            fit_y = Y2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, fit_y)
    sk_loss, sk_coef, sk_icpt = _sklearn_backprop(est, X, Y2.astype(np.float64), w)

    model = _our_model(est)
    out = model(X)
    if loss_name == "squared_error":
        loss, scale = mc.MSELoss(), K / 2
        value = loss(out, Y, w) / 2
    elif loss_name == "poisson":
        loss, scale = mc.PoissonNLLLoss(), K
        value = loss(out, Y, w) * K + poisson_constant(Y, w)
    elif loss_name == "log_loss":
        loss, scale = mc.CrossEntropyLoss(), 1
        value = loss(out, labels, w)
    else:
        loss, scale = mc.BCEWithLogitsLoss(), K
        value = loss(out, Y2.astype(np.float64), w) * K
    assert value == pytest.approx(sk_loss, rel=1e-12)
    model.zero_grad()
    model.backward(loss.backward())
    linears = [m for m in model if isinstance(m, mc.Linear)]
    for lin, cg, ig in zip(linears, sk_coef, sk_icpt):
        np.testing.assert_allclose(lin.weight.grad.T * scale, cg, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(lin.bias.grad * scale, ig, rtol=1e-11, atol=1e-14)
