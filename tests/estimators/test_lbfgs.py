"""solver='lbfgs' with scikit-learn's own MLPs as the oracle: the same initial weights, the same
regularised loss and gradient (scipy's L-BFGS-B driving one C++ full-batch call per evaluation),
so the same iterates; scikit-learn's stopping rules (max_iter, max_fun, tol), warnings and
attributes; partial_fit hidden as scikit-learn hides it."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")

from mlpcore.sklearn import MLPClassifier, MLPRegressor
from sklearn import neural_network as sknn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

_rng = np.random.default_rng(0)
_X = _rng.standard_normal((150, 5))
TARGETS = {
    "multiclass": ("clf", (_X[:, 0] > 0).astype(int) + (_X[:, 1] > 0.5), {}),
    "binary-str": ("clf", np.where(_X[:, 0] + _X[:, 2] > 0, "yes", "no"), {}),
    "multilabel": ("clf", np.stack([_X[:, 0] > 0, _X[:, 1] > 0, _X[:, 2] > 0], 1) * 1, {}),
    "regression": ("reg", 2 * _X[:, 0] + _X[:, 1], {}),
    "regression-2": ("reg", np.stack([2 * _X[:, 0] + _X[:, 1], np.sin(_X[:, 2])], 1), {}),
    "poisson": ("reg", _rng.poisson(np.exp(0.5 * _X[:, 0])).astype(float), {"loss": "poisson"}),
}
PAIRS = {"clf": (MLPClassifier, sknn.MLPClassifier), "reg": (MLPRegressor, sknn.MLPRegressor)}


pytestmark = pytest.mark.usefixtures("one_thread")


def _fit_both(name, sample_weight=None, **params):
    kind, y, extra = TARGETS[name]
    ours, theirs = PAIRS[kind]
    p = {"hidden_layer_sizes": (16, 8), "random_state": 1, "solver": "lbfgs", "max_iter": 50, "alpha": 1e-3,
         **extra, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ours(**p).fit(_X, y, sample_weight=sample_weight), theirs(**p).fit(_X, y, sample_weight=sample_weight)


def _assert_same_fit(a, b, rtol=1e-7):
    assert a.n_iter_ == b.n_iter_
    assert a.loss_ == pytest.approx(b.loss_, rel=rtol)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert ca.shape == cb.shape and ca.dtype == cb.dtype == np.float64
        np.testing.assert_allclose(ca, cb, rtol=rtol * 100, atol=rtol * 10)
    if isinstance(a, MLPClassifier):
        np.testing.assert_array_equal(a.predict(_X), b.predict(_X))
        np.testing.assert_allclose(a.predict_proba(_X), b.predict_proba(_X), atol=1e-6)
    else:
        np.testing.assert_allclose(a.predict(_X), b.predict(_X), rtol=1e-6, atol=1e-9)
    assert a.out_activation_ == b.out_activation_


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_lbfgs_reproduces_sklearn(name):
    """Same loss (scikit-learn's scaling per output kind, the L2 term over the weights only, the
    Poisson constant) and gradient: scipy takes the same steps (measured: coefficients agree to
    ~1e-11 after 50 iterations)."""
    _assert_same_fit(*_fit_both(name))


@pytest.mark.parametrize("name", ["multiclass", "binary-str", "regression", "regression-2", "poisson"])
def test_lbfgs_with_sample_weight_reproduces_sklearn(name):
    """scikit-learn's weighted loss: np.average over rows with the weights, L2 over the sum of the
    weights. (Multilabel is left out: there scikit-learn's log loss clips saturated probabilities
    at float eps, which changes its value, not ours, and so the line search.)"""
    w = np.random.default_rng(4).integers(0, 4, len(_X)).astype(float)
    _assert_same_fit(*_fit_both(name, sample_weight=w))


def _messages(fit) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = fit()
    return est, [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize("params", [{"max_iter": 5}, {"max_iter": 500, "max_fun": 12}, {"max_iter": 500, "tol": 1e-2}])
def test_stopping_rules_and_warnings_are_sklearns(params):
    """max_iter (scipy's maxiter), max_fun (maxfun) and tol (gtol) mean what they mean in
    scikit-learn: same iteration count, same ConvergenceWarning text (none when it converged)."""
    y = TARGETS["multiclass"][1]
    p = {"hidden_layer_sizes": (16,), "random_state": 0, "solver": "lbfgs", **params}
    a, wa = _messages(lambda: MLPClassifier(**p).fit(_X, y))
    b, wb = _messages(lambda: sknn.MLPClassifier(**p).fit(_X, y))
    assert a.n_iter_ == b.n_iter_ <= p["max_iter"]
    assert wa == wb
    if "tol" in params:
        assert wa == [] and a.n_iter_ < 500
    else:
        assert len(wa) == 1 and "lbfgs failed to converge" in wa[0]


def test_fitted_attributes_are_sklearns_plus_a_loss_curve():
    """scikit-learn's L-BFGS sets loss_ and n_iter_ (t_ stays 0) and neither best_loss_ nor the
    validation attributes; early_stopping is ignored. mlpcore adds loss_curve_: the loss after
    each iteration (scikit-learn's lbfgs has none)."""
    y = TARGETS["regression"][1]
    a, b = _fit_both("regression", max_iter=30)
    for attr in ("best_loss_", "validation_scores_", "best_validation_score_"):
        assert not hasattr(a, attr) and not hasattr(b, attr)
    assert a.t_ == b.t_ == 0
    assert not hasattr(b, "loss_curve_")
    assert len(a.loss_curve_) == a.n_iter_ and a.loss_curve_[-1] == pytest.approx(a.loss_, rel=1e-12)
    assert all(x >= y for x, y in zip(a.loss_curve_, a.loss_curve_[1:]))
    es = MLPRegressor(hidden_layer_sizes=(16, 8), random_state=1, solver="lbfgs", max_iter=30, alpha=1e-3,
                      early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        es.fit(_X, y)
    assert es.n_iter_ == a.n_iter_ and es.loss_ == a.loss_ and not hasattr(es, "validation_scores_")


def test_warm_start_continues_from_the_current_weights():
    """As scikit-learn: a second fit with warm_start=True starts L-BFGS from the fitted weights."""
    y = TARGETS["multiclass"][1]
    p = {"hidden_layer_sizes": (16,), "random_state": 0, "solver": "lbfgs", "max_iter": 10, "warm_start": True}
    a, b = MLPClassifier(**p), sknn.MLPClassifier(**p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            a.fit(_X, y)
            b.fit(_X, y)
    _assert_same_fit(a, b)


def test_switching_solver_with_warm_start():
    """A warm-started fit may change the solver: 'lbfgs' then 'adam' continues from the L-BFGS
    weights (scikit-learn fails there: its stochastic loop needs attributes L-BFGS never set), and
    'adam' then 'lbfgs' continues from Adam's."""
    y = TARGETS["multiclass"][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, warm_start=True, random_state=0)
        first = m.fit(_X, y).loss_
        m.set_params(solver="adam", max_iter=3).fit(_X, y)
        assert len(m.loss_curve_) == 20 + 3 and m.best_loss_ == min(m.loss_curve_[20:])  # appended
        m.set_params(solver="lbfgs", max_iter=20).fit(_X, y)
    assert m.loss_ < first and m.score(_X, y) > 0.9 and len(m.loss_curve_) == 23 + m.n_iter_


def test_partial_fit_is_hidden_for_lbfgs():
    """scikit-learn hides partial_fit for 'lbfgs' (available_if): hasattr is False and the
    AttributeError says why. Its MLPRegressor's condition returns the bound check method itself
    (always true), so there partial_fit stays visible and runs a whole L-BFGS fit; mlpcore hides it
    for both estimators."""
    assert not hasattr(sknn.MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(sknn.MLPRegressor(solver="lbfgs"), "partial_fit")
    for cls in (MLPClassifier, MLPRegressor):
        est = cls(solver="lbfgs")
        assert not hasattr(est, "partial_fit")
        with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as e:
            est.partial_fit  # noqa: B018
        assert "only available for stochastic optimizers" in str(e.value.__cause__)
        assert hasattr(est.set_params(solver="adam"), "partial_fit")


def test_digits_accuracy_as_sklearn():
    """On digits, the full default L-BFGS run (200 iterations) ends within 0.5 accuracy points of
    scikit-learn's."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    s = StandardScaler().fit(Xtr)
    Xtr, Xte = s.transform(Xtr), s.transform(Xte)
    p = {"solver": "lbfgs", "hidden_layer_sizes": (64,), "random_state": 0}
    a, b = MLPClassifier(**p).fit(Xtr, ytr), sknn.MLPClassifier(**p).fit(Xtr, ytr)
    assert a.score(Xte, yte) > 0.95
    assert abs(a.score(Xte, yte) - b.score(Xte, yte)) <= 0.005
