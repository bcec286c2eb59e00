"""The parameters' dtype and the writable coefs_ / intercepts_, with scikit-learn's own MLPs as the
oracle. scikit-learn keeps float32 parameters for float32 X and float64 for float64 (ints become
float64); its L-BFGS ends with float64 parameters whatever X is (scipy's float64 vector is
unpacked into coefs_); predictions follow numpy's promotion of X and the parameters. coefs_ /
intercepts_ are plain lists there: assigning them, an item of them, or writing into their arrays
sets the weights a later predict or warm-started fit uses."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")

from mlpcore.sklearn import MLPClassifier, MLPRegressor
from sklearn import neural_network as sknn

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_thread")]

_rng = np.random.default_rng(0)
_X = _rng.standard_normal((80, 4))
_YC = (_X[:, 0] > 0).astype(int) + (_X[:, 1] > 0.5)
_YR = 2 * _X[:, 0] + _X[:, 1]
PAIRS = {"clf": (MLPClassifier, sknn.MLPClassifier, _YC), "reg": (MLPRegressor, sknn.MLPRegressor, _YR)}


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_dtypes_follow_sklearn(kind, x_dtype, solver):
    ours, theirs, y = PAIRS[kind]
    X = (_X * 3).astype(x_dtype)
    p = {"hidden_layer_sizes": (8,), "max_iter": 3, "random_state": 0, "solver": solver}
    a, b = ours(**p).fit(X, y), theirs(**p).fit(X, y)
    assert [c.dtype for c in a.coefs_ + a.intercepts_] == [c.dtype for c in b.coefs_ + b.intercepts_]
    methods = ["predict"] if kind == "reg" else ["predict_proba", "predict_log_proba"]
    for m in methods:
        for Xp in (X, _X.astype(np.float32), _X, _X.astype(np.int32)):
            assert getattr(a, m)(Xp).dtype == getattr(b, m)(Xp).dtype, (m, Xp.dtype)
    if kind == "clf":
        assert a.predict(X).dtype == b.predict(X).dtype


def test_float32_fit_computes_in_float32_and_matches_sklearn():
    """float32 X trains float32 parameters (not float64 rounded at the end): sgd without
    shuffling reproduces scikit-learn's float32 fit to float32 rounding."""
    p = {"hidden_layer_sizes": (8,), "max_iter": 10, "random_state": 0, "solver": "sgd", "shuffle": False,
         "learning_rate_init": 0.05, "alpha": 0.0}
    X = _X.astype(np.float32)
    a, b = MLPRegressor(**p).fit(X, _YR), sknn.MLPRegressor(**p).fit(X, _YR)
    assert a._model.dtype == np.float32
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-5)


def _fitted_pair(kind, **params):
    ours, theirs, y = PAIRS[kind]
    p = {"hidden_layer_sizes": (6,), "max_iter": 2, "random_state": 0, "solver": "sgd", "shuffle": False,
         "learning_rate_init": 0.05, "alpha": 0.0, **params}
    return ours(**p).fit(_X, y), theirs(**p).fit(_X, y), y


def _new_weights(est, seed):
    r = np.random.default_rng(seed)
    return ([r.uniform(-1, 1, c.shape) for c in est.coefs_], [r.uniform(-1, 1, b.shape) for b in est.intercepts_])


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_assigning_coefs_and_intercepts_sets_the_weights(kind):
    a, b, _ = _fitted_pair(kind)
    out = "predict_proba" if kind == "clf" else "predict"
    coefs, intercepts = _new_weights(a, 1)
    for est in (a, b):
        est.coefs_, est.intercepts_ = coefs, intercepts  # a whole list
    np.testing.assert_allclose(getattr(a, out)(_X), getattr(b, out)(_X), rtol=1e-12)
    for i, c in enumerate(a.coefs_):
        np.testing.assert_array_equal(c, coefs[i])
    W = np.full_like(coefs[0], 0.25)
    for est in (a, b):
        est.coefs_[0] = W  # one item
        est.intercepts_[-1][:] = 0.5  # in place, into the array coefs_ / intercepts_ hand out
    np.testing.assert_array_equal(a.coefs_[0], W)
    np.testing.assert_array_equal(a.intercepts_[-1], np.full_like(a.intercepts_[-1], 0.5))
    np.testing.assert_allclose(getattr(a, out)(_X), getattr(b, out)(_X), rtol=1e-12)
    assert pickle.loads(pickle.dumps(a.coefs_))[0].shape == W.shape  # a plain list of arrays
    np.testing.assert_array_equal(getattr(pickle.loads(pickle.dumps(a)), out)(_X), getattr(a, out)(_X))


def test_warm_start_from_assigned_weights_as_sklearn():
    """Fit once, assign starting weights, fit again with warm_start=True: scikit-learn's use of
    writable coefs_. Both continue from the assigned weights along the same path."""
    a, b, y = _fitted_pair("reg", warm_start=True)
    coefs, intercepts = _new_weights(a, 2)
    for est in (a, b):
        est.coefs_, est.intercepts_ = coefs, intercepts
        est.set_params(max_iter=5).fit(_X, y)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-9, atol=1e-12)


def test_bad_assignments_are_refused_by_name():
    """scikit-learn accepts any list and fails later (a shape mismatch at predict, an
    AttributeError at a warm-started fit of an unfitted estimator); mlpcore checks on assignment
    and writes nothing unless every layer fits."""
    a, b, y = _fitted_pair("clf")
    before = [c.copy() for c in a.coefs_]
    with pytest.raises(ValueError, match=r"coefs_\[1\]: expected shape \(6, 3\), got \(6, 2\)"):
        a.coefs_ = [np.zeros((4, 6)), np.zeros((6, 2))]
    for c, d in zip(a.coefs_, before):
        np.testing.assert_array_equal(c, d)
    with pytest.raises(ValueError, match="expected 2 arrays"):
        a.intercepts_ = [np.zeros(6)]
    with pytest.raises(ValueError, match=r"intercepts_\[0\]"):
        a.intercepts_[0] = np.zeros(5)
    with pytest.raises(ValueError, match="cannot change the number of layers"):
        a.coefs_[0:1] = []
    b.coefs_ = [np.zeros((5, 6)), np.zeros((6, 3))]
    with pytest.raises(ValueError):
        b.predict(_X)
    fresh = sknn.MLPClassifier(warm_start=True, max_iter=2)
    fresh.coefs_ = before
    with pytest.raises(AttributeError):
        fresh.fit(_X, y)
    with pytest.raises(AttributeError, match="not fitted"):
        MLPClassifier(warm_start=True).coefs_ = before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="NaN"):
            a.coefs_[0] = np.full((4, 6), np.nan)
