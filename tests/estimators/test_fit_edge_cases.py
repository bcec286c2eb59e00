"""Edge cases of a fit, with scikit-learn's own MLPs as the oracle: a y with one class, a loss that
diverges under early stopping, and errors that name labels as the user gave them."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")

from mlpcore.sklearn import MLPClassifier, MLPRegressor
from sklearn import neural_network as sknn
from sklearn.exceptions import ConvergenceWarning

_rng = np.random.default_rng(0)
_X = _rng.standard_normal((60, 4))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_one_class_fits_as_sklearn(solver):
    """scikit-learn fits a y of one class: one logistic output trained towards 0 (LabelBinarizer
    encodes the only class as 0), predict always returns that class, predict_proba has two
    columns (the second the output's probability)."""
    y = np.full(len(_X), "cat")
    p = {"hidden_layer_sizes": (8,), "max_iter": 20, "random_state": 0, "solver": solver, "shuffle": False,
         "alpha": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a, b = MLPClassifier(**p).fit(_X, y), sknn.MLPClassifier(**p).fit(_X, y)
    np.testing.assert_array_equal(a.classes_, b.classes_)
    assert (a.n_outputs_, a.out_activation_) == (b.n_outputs_, b.out_activation_) == (1, "logistic")
    np.testing.assert_array_equal(a.predict(_X), b.predict(_X))
    assert set(a.predict(_X)) == {"cat"}
    np.testing.assert_allclose(a.predict_proba(_X), b.predict_proba(_X), rtol=1e-7, atol=1e-9)
    assert a.score(_X, y) == 1.0


def test_diverging_loss_with_early_stopping_keeps_the_best_weights():
    """scikit-learn does not raise: the validation score turns -inf and then NaN (recorded in
    validation_scores_, the losses in loss_curve_), it iterates on the non-finite weights up to
    max_iter and restores the weights of the best score. mlpcore records the same epochs, then
    stops at the first non-finite training loss with a ConvergenceWarning, and restores the same
    best weights."""
    y = 1e6 * _X[:, 0]
    p = {"solver": "sgd", "learning_rate_init": 1e3, "max_iter": 30, "random_state": 0, "early_stopping": True,
         "shuffle": False, "hidden_layer_sizes": (16,)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's overflow RuntimeWarnings and its max_iter warning
        b = sknn.MLPRegressor(**p).fit(_X, y)
    with pytest.warns(ConvergenceWarning, match="diverged at iteration") as record:
        a = MLPRegressor(**p).fit(_X, y)
    assert "Maximum iterations" not in " ".join(str(r.message) for r in record)
    k = a.n_iter_
    assert k < b.n_iter_ == 30
    assert not np.isfinite(a.loss_curve_[-1]) and all(np.isfinite(a.loss_curve_[:-1]))
    np.testing.assert_allclose(a.loss_curve_[:-1], b.loss_curve_[:k - 1], rtol=1e-9)
    assert not np.isfinite(b.loss_curve_[k - 1])
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_[:k], rtol=1e-9)
    assert a.best_validation_score_ == pytest.approx(b.best_validation_score_, rel=1e-9)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert np.isfinite(ca).all()
        np.testing.assert_allclose(ca, cb, rtol=1e-9, atol=1e-9 * np.abs(cb).max())
    pb = b.predict(_X)
    np.testing.assert_allclose(a.predict(_X), pb, rtol=1e-9, atol=1e-9 * np.abs(pb).max())
    # without early stopping both refuse non-finite weights with scikit-learn's message
    p["early_stopping"] = False
    for cls in (MLPRegressor, sknn.MLPRegressor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow, and scikit-learn's max_iter warning before it raises
            with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
                cls(**p).fit(_X, y)


def test_label_errors_name_the_users_labels():
    """An unseen label in partial_fit (and a warm start with other classes) is named as given,
    never as the integer the network's targets encode it to."""
    y = np.where(_X[:, 0] > 0, 10, 20)
    m = MLPClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(_X, y, classes=[10, 20])
    with pytest.raises(ValueError, match=r"not in `self.classes_`: \[30\]") as e:
        m.partial_fit(_X, np.where(_X[:, 0] > 0, 10, 30))
    assert "[10 20]" in str(e.value)
    ys = np.where(_X[:, 0] > 0, "cat", "dog")
    m = MLPClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(_X, ys, classes=["cat", "dog"])
    with pytest.raises(ValueError, match=r"not in `self.classes_`: \['emu'\]"):
        m.partial_fit(_X, np.where(_X[:, 0] > 0, "cat", "emu"))
    with pytest.raises(ValueError, match=r"`classes=\['cat' 'emu'\]` is not the same"):
        m.partial_fit(_X, ys, classes=["cat", "emu"])
    w = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        w.fit(_X, ys)
    with pytest.raises(ValueError, match=r"Previously got \['cat' 'dog'\], `y` has \['cat' 'emu'\]"):
        w.fit(_X, np.where(_X[:, 0] > 0, "cat", "emu"))
