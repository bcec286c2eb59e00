"""fit(..., sample_weight) and partial_fit(..., sample_weight) with scikit-learn's own MLPs as the
oracle. scikit-learn weighs each batch's loss with np.average (sum(w l) / sum(w)), divides the L2
term by the batch's sum of weights, scores the early-stopping validation split with the weights of
its rows, and checks the weights with _check_sample_weight (its messages)."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")

from mlpcore.sklearn import MLPClassifier, MLPRegressor
from sklearn import neural_network as sknn
from sklearn.exceptions import ConvergenceWarning

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_thread")]

_rng = np.random.default_rng(0)
_X = _rng.standard_normal((150, 5))
_W = _rng.integers(0, 4, 150).astype(float)  # zeros included
TARGETS = {
    "multiclass": ("clf", (_X[:, 0] > 0).astype(int) + (_X[:, 1] > 0.5), {}),
    "binary-str": ("clf", np.where(_X[:, 0] + _X[:, 2] > 0, "yes", "no"), {}),
    "multilabel": ("clf", np.stack([_X[:, 0] > 0, _X[:, 1] > 0, _X[:, 2] > 0], 1) * 1, {}),
    "regression-2": ("reg", np.stack([2 * _X[:, 0] + _X[:, 1], np.sin(_X[:, 2])], 1), {}),
    "poisson": ("reg", _rng.poisson(np.exp(0.5 * _X[:, 0])).astype(float), {"loss": "poisson"}),
}
PAIRS = {"clf": (MLPClassifier, sknn.MLPClassifier), "reg": (MLPRegressor, sknn.MLPRegressor)}


def _pair(name, **params):
    kind, y, extra = TARGETS[name]
    ours, theirs = PAIRS[kind]
    p = {"hidden_layer_sizes": (16, 8), "random_state": 1, "solver": "sgd", "max_iter": 20, "alpha": 0.0,
         "batch_size": 32, "shuffle": False, "learning_rate_init": 0.01, **extra, **params}
    return ours(**p), theirs(**p), y


def _assert_same(a, b, rtol=1e-10):
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("early_stopping", [False, True])
def test_weighted_sgd_reproduces_sklearn(name, early_stopping):
    """Batches of 32 rows in order, weights 0..3: each batch's weighted mean loss, its gradient,
    the epoch loss (the Poisson deviance's constant weighted per batch too) and, with early
    stopping, the weighted validation score are scikit-learn's to rounding (alpha=0: mlpcore's L2
    also decays the biases)."""
    a, b, y = _pair(name, early_stopping=early_stopping, validation_fraction=0.2, n_iter_no_change=100)
    a.fit(_X, y, sample_weight=_W)
    b.fit(_X, y, sample_weight=_W)
    assert a.n_iter_ == b.n_iter_ == 20
    _assert_same(a, b)
    if early_stopping:
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-10, atol=1e-14)
        assert a.best_validation_score_ == pytest.approx(b.best_validation_score_, rel=1e-10)


def test_weighted_l2_and_adam_one_batch_as_sklearn():
    """One batch per epoch: scikit-learn's L2 term is alpha / (2 sum(w)) ||W||^2; the shuffled rows
    of one batch do not change it. Adam differs from scikit-learn's by where eps enters and the
    L2 reaches the biases too: the curves agree to a small fraction."""
    a, b, y = _pair("multiclass", alpha=1e-2, batch_size="auto", shuffle=True)
    a.fit(_X, y, sample_weight=_W)
    b.fit(_X, y, sample_weight=_W)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4)
    a, b, y = _pair("regression-2", solver="adam", batch_size="auto")
    a.fit(_X, y, sample_weight=_W)
    b.fit(_X, y, sample_weight=_W)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-3)


def test_partial_fit_with_weights_as_sklearn():
    a, b, y = _pair("multiclass")
    for i in range(3):
        a.partial_fit(_X, y, sample_weight=_W, classes=[0, 1, 2] if i == 0 else None)
        b.partial_fit(_X, y, sample_weight=_W, classes=[0, 1, 2] if i == 0 else None)
    _assert_same(a, b)
    a, b, y = _pair("poisson")
    for _ in range(3):
        a.partial_fit(_X, y, sample_weight=_W)
        b.partial_fit(_X, y, sample_weight=_W)
    _assert_same(a, b)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_integer_weights_are_repeated_rows(solver):
    """scikit-learn's definition of a sample weight (check_sample_weight_equivalence): weight k is
    the row repeated k times, weight 0 the row removed (sgd: the 193 repeated rows, as the 150
    weighted ones, make one batch of batch_size='auto', 200)."""
    y = TARGETS["multiclass"][1]
    Xr, yr = np.repeat(_X, _W.astype(int), axis=0), np.repeat(y, _W.astype(int))
    p = {"hidden_layer_sizes": (8,), "random_state": 0, "solver": solver, "max_iter": 30, "alpha": 1e-3}
    a = MLPClassifier(**p).fit(_X, y, sample_weight=_W)
    b = MLPClassifier(**p).fit(Xr, yr)
    np.testing.assert_allclose(a.predict_proba(_X), b.predict_proba(_X), rtol=1e-8, atol=1e-10)


def test_weights_are_checked_as_sklearn_checks_them():
    y = TARGETS["multiclass"][1]
    for est in (MLPClassifier(max_iter=2), sknn.MLPClassifier(max_iter=2)):
        with pytest.raises(ValueError, match=r"sample_weight.shape == \(149,\), expected \(150,\)"):
            est.fit(_X, y, sample_weight=_W[:149])
        with pytest.raises(ValueError, match="at least one non-zero"):
            est.fit(_X, y, sample_weight=np.zeros(150))
    # lists, scalars and pandas Series are weights too (a scalar weighs every row alike)
    pd = pytest.importorskip("pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = MLPClassifier(max_iter=3, random_state=0).fit(_X, y, sample_weight=_W)
        for w in (list(_W), pd.Series(_W)):
            got = MLPClassifier(max_iter=3, random_state=0).fit(_X, y, sample_weight=w)
            np.testing.assert_array_equal(got.predict_proba(_X), ref.predict_proba(_X))
        one = MLPClassifier(max_iter=3, random_state=0, alpha=0.0).fit(_X, y, sample_weight=2.0)
        none = MLPClassifier(max_iter=3, random_state=0, alpha=0.0).fit(_X, y)
    np.testing.assert_allclose(one.predict_proba(_X), none.predict_proba(_X), rtol=1e-12)
    w = _W.copy()
    MLPRegressor(max_iter=2).fit(_X, TARGETS["poisson"][1], sample_weight=w)
    np.testing.assert_array_equal(w, _W)  # not overwritten
