"""mlpcore.sklearn: scikit-learn's own estimator checks, equivalence with scikit-learn's MLP
update rule, and the behaviours users rely on (Pipeline, GridSearchCV, pickling, partial_fit,
early stopping, string labels, threads, errors)."""

import io
import os
import pickle
import subprocess
import sys
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")

import mlpcore as mc
import scipy.sparse as sp
from mlpcore.sklearn import MLPClassifier, MLPRegressor
from sklearn import neural_network as sknn
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

# Most fits below stop at max_iter on purpose (small and fast); the warning itself is tested in
# test_convergence_warning_and_tol_stop.
pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_thread")]


# Instances for scikit-learn's checks: scikit-learn runs its own MLPs through them with
# max_iter=100 (sklearn/utils/_test_common/instance_generator.py); we do the same.
CHECKED = [MLPClassifier(max_iter=100, random_state=0), MLPRegressor(max_iter=100, random_state=0)]


def expected_failed_checks(estimator) -> dict:
    """Checks expected to fail, each with its reason. None: every check of scikit-learn's
    suite passes for both estimators (the array-API check needs SCIPY_ARRAY_API=1 set before
    scipy is imported, so it runs in a subprocess below: test_array_api_numpy_dispatch)."""
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_array_api_numpy_dispatch():
    """scikit-learn's array-API check (numpy namespace, dispatch on): it is skipped in-process
    unless SCIPY_ARRAY_API=1 was set before scipy was imported, so run it in a fresh process."""
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from mlpcore.sklearn import MLPClassifier, MLPRegressor\n"
        "for est in (MLPClassifier(max_iter=100, random_state=0), MLPRegressor(max_iter=100, random_state=0)):\n"
        "    check_array_api_input(type(est).__name__, est, array_namespace='numpy', expect_only_array_outputs=False)\n"
        "print('array-api-ok')\n"
    )
    env = dict(
        os.environ, SCIPY_ARRAY_API="1", PYTHONPATH=os.pathsep.join(sys.path), OPENBLAS_NUM_THREADS="1"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert out.returncode == 0 and "array-api-ok" in out.stdout, out.stderr[-3000:]


# ------------------------------------------------------------------------------------------------
# the update rule is scikit-learn's: same init, same gradients, same loss_curve_
# ------------------------------------------------------------------------------------------------
_rng = np.random.default_rng(0)
_X = _rng.standard_normal((150, 5))
TARGETS = {
    "multiclass": (MLPClassifier, sknn.MLPClassifier, (_X[:, 0] > 0).astype(int) + (_X[:, 1] > 0.5)),
    "binary-str": (MLPClassifier, sknn.MLPClassifier, np.where(_X[:, 0] + _X[:, 2] > 0, "yes", "no")),
    "multilabel": (
        MLPClassifier,
        sknn.MLPClassifier,
        np.stack([_X[:, 0] > 0, _X[:, 1] > 0, _X[:, 2] > 0], 1) * 1,
    ),
    "regression": (MLPRegressor, sknn.MLPRegressor, 2 * _X[:, 0] + _X[:, 1]),
    "regression-2": (
        MLPRegressor,
        sknn.MLPRegressor,
        np.stack([2 * _X[:, 0] + _X[:, 1], np.sin(_X[:, 2])], 1),
    ),
}
# SGD (momentum, Nesterov, schedules) reproduces scikit-learn to float32 rounding when nothing
# depends on the batch order (shuffle=False) and alpha=0 (our L2 also decays the biases).
SGD_CONFIGS = {
    "sgd-nesterov-relu": {"solver": "sgd", "learning_rate_init": 0.05},
    "sgd-momentum-tanh": {
        "solver": "sgd",
        "learning_rate_init": 0.05,
        "nesterovs_momentum": False,
        "activation": "tanh",
    },
    "sgd-logistic": {"solver": "sgd", "learning_rate_init": 0.05, "activation": "logistic"},
    "sgd-identity": {"solver": "sgd", "learning_rate_init": 0.01, "activation": "identity"},
    "sgd-invscaling": {
        "solver": "sgd",
        "momentum": 0.0,
        "learning_rate": "invscaling",
        "learning_rate_init": 0.5,
        "power_t": 0.25,
    },
    # tol=10 never improves: the learning rate is divided by 5 every 3 epochs, in both
    "sgd-adaptive": {
        "solver": "sgd",
        "momentum": 0.0,
        "learning_rate": "adaptive",
        "learning_rate_init": 0.1,
        "tol": 10.0,
        "n_iter_no_change": 2,
    },
}


def _fit_both(name: str, **params):
    ours, theirs, y = TARGETS[name]
    common = {
        "hidden_layer_sizes": (16, 8),
        "random_state": 1,
        "shuffle": False,
        "batch_size": 32,
        "max_iter": 15,
        "alpha": 0.0,
    }
    common.update(params)
    return ours(**common).fit(_X, y), theirs(**common).fit(_X, y), y


@pytest.mark.parametrize("config", sorted(SGD_CONFIGS))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_sgd_reproduces_sklearn(target, config):
    a, b, _ = _fit_both(target, **SGD_CONFIGS[config])
    assert a.n_iter_ == b.n_iter_ == 15
    np.testing.assert_allclose(
        a.loss_curve_, b.loss_curve_, rtol=1e-4
    )  # measured <= 1.1e-5; a wrong gain is % off
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert ca.shape == cb.shape
        np.testing.assert_allclose(ca, cb, rtol=1e-3, atol=1e-4)
    if isinstance(a, MLPClassifier):
        np.testing.assert_array_equal(a.predict(_X), b.predict(_X))
        np.testing.assert_allclose(a.predict_proba(_X), b.predict_proba(_X), atol=1e-4)
        assert a.out_activation_ == b.out_activation_
    else:
        np.testing.assert_allclose(a.predict(_X), b.predict(_X), rtol=1e-4, atol=1e-4)
    assert a.best_loss_ == pytest.approx(b.best_loss_, rel=1e-4)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_adam_and_alpha_close_to_sklearn(target):
    """Adam places eps after the bias correction (PyTorch) and our L2 decays biases too: the
    curves agree to a few per cent, not to rounding."""
    a, b, _ = _fit_both(target, solver="adam", learning_rate_init=0.01)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-2)
    a, b, _ = _fit_both(target, solver="sgd", learning_rate_init=0.05, alpha=0.1)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=5e-2)
    assert a.loss_curve_[-1] < a.loss_curve_[0]


# ------------------------------------------------------------------------------------------------
# behaviour
# ------------------------------------------------------------------------------------------------
def _digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def test_digits_accuracy_in_pipeline():
    Xtr, Xte, ytr, yte = _digits()
    clf = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0)
    )
    clf.fit(Xtr, ytr)
    assert clf.score(Xte, yte) > 0.95
    proba = clf.predict_proba(Xte)
    assert proba.shape == (len(yte), 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(Xte))
    np.testing.assert_allclose(clf.predict_log_proba(Xte), np.log(proba), atol=1e-9)


def test_grid_search_over_hidden_sizes_and_alpha():
    Xtr, _, ytr, _ = _digits()
    Xtr = Xtr / 16.0
    grid = GridSearchCV(
        MLPClassifier(max_iter=20, learning_rate_init=0.01, random_state=0, tol=0.0),
        {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1.0]},
        cv=2,
    )
    grid.fit(Xtr, ytr)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_params_["hidden_layer_sizes"] == (32,)  # 8 units learn digits worse in 20 epochs
    assert grid.best_estimator_.coefs_[0].shape == (64, 32)
    assert grid.best_score_ > 0.85


def test_convergence_warning_and_tol_stop():
    X, y = _X, TARGETS["multiclass"][2]
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        MLPClassifier(max_iter=3, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when the tol rule stops first
        m = MLPClassifier(max_iter=500, tol=1.0, n_iter_no_change=2, random_state=0).fit(X, y)
    # epoch 1 sets best_loss_; epochs 2, 3, 4 do not improve by tol=1: 3 > n_iter_no_change stops
    assert m.n_iter_ == 4 and len(m.loss_curve_) == 4
    assert m.best_loss_ == min(m.loss_curve_)


def test_string_labels_and_classes():
    X = _X
    y = np.array(["cat", "dog", "emu"])[TARGETS["multiclass"][2]]
    m = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=200, random_state=0).fit(
        X, y
    )
    np.testing.assert_array_equal(m.classes_, ["cat", "dog", "emu"])
    pred = m.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(m.classes_)
    assert m.score(X, y) > 0.9
    assert m.n_outputs_ == 3 and m.out_activation_ == "softmax"
    yb = np.where(TARGETS["binary-str"][2] == "yes", "pos", "neg")
    mb = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=200, random_state=0).fit(
        X, yb
    )
    assert mb.n_outputs_ == 1 and mb.out_activation_ == "logistic" and mb.coefs_[-1].shape == (16, 1)
    assert mb.predict_proba(X).shape == (len(X), 2) and mb.score(X, yb) > 0.9


def test_multilabel_and_multioutput_shapes():
    Y = TARGETS["multilabel"][2]
    m = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300, random_state=0).fit(
        _X, Y
    )
    assert m.predict(_X).shape == Y.shape and m.predict_proba(_X).shape == Y.shape
    assert m.score(_X, Y) > 0.8  # subset accuracy
    Yr = TARGETS["regression-2"][2]
    r = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300, random_state=0).fit(
        _X, Yr
    )
    assert r.predict(_X).shape == Yr.shape and r.score(_X, Yr) > 0.9
    assert MLPRegressor(max_iter=5, random_state=0).fit(_X, Yr[:, 0]).predict(_X).shape == (len(_X),)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_pickle_round_trip(cls):
    """Pickles carry safetensors bytes, not C++ objects; predictions are identical and training
    continues identically (the optimizer state travels too)."""
    y = TARGETS["multiclass" if cls is MLPClassifier else "regression"][2]
    m = cls(hidden_layer_sizes=(16, 8), max_iter=10, random_state=0).fit(_X, y)
    blob = pickle.dumps(m)
    assert b"_weights_safetensors" in blob
    m2 = pickle.loads(blob)
    assert "_model" in m2.__dict__ and m2.get_params() == m.get_params()
    np.testing.assert_array_equal(m.predict(_X), m2.predict(_X))
    for a, b in zip(m.coefs_ + m.intercepts_, m2.coefs_ + m2.intercepts_):
        np.testing.assert_array_equal(a, b)
    m.partial_fit(_X, y)
    m2.partial_fit(_X, y)
    np.testing.assert_array_equal(m.predict(_X), m2.predict(_X))
    # unfitted estimators pickle too
    assert pickle.loads(pickle.dumps(cls(alpha=0.5))).alpha == 0.5



@pytest.mark.parametrize("solver,learning_rate", [("sgd", "adaptive"), ("sgd", "invscaling"), ("adam", "constant")])
def test_pickle_carries_optimizer_state_exactly(solver, learning_rate):
    """The pickled blob is an mlpcore checkpoint (mlpcore.io.save_bytes); after unpickling the
    optimizer's state_dict (type, hyper-parameters, step, moment buffers) and the adapted
    learning rate are bit-identical to the original's."""
    from mlpcore.io import load_checkpoint_bytes

    y = TARGETS["multiclass"][2]
    m = MLPClassifier(hidden_layer_sizes=(8,), solver=solver, learning_rate=learning_rate, momentum=0.9,
                      max_iter=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(_X, y)
    m2 = pickle.loads(pickle.dumps(m))
    a, b = m._optimizer.state_dict(), m2._optimizer.state_dict()
    assert a["type"] == b["type"] and a["hyper"] == b["hyper"] and a["step"] == b["step"] > 0
    np.testing.assert_array_equal(a["state"], b["state"])
    assert m2._learning_rate == m._learning_rate
    ckpt = load_checkpoint_bytes(m.__getstate__()["_weights_safetensors"])
    assert ckpt["optimizer_state"]["type"] == a["type"]
    for p, q in zip(ckpt["model"].parameters(), m._model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_partial_fit():
    y = TARGETS["multiclass"][2]
    m = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clone(m).partial_fit(_X, y)
    m.partial_fit(_X[:50], y[:50], classes=[0, 1, 2])
    assert m.n_iter_ == 1 and len(m.loss_curve_) == 1
    for _ in range(30):
        m.partial_fit(_X, y)
    assert len(m.loss_curve_) == 31 and m.loss_curve_[-1] < 0.5 * m.loss_curve_[0]
    assert m.score(_X, y) > 0.8
    with pytest.raises(ValueError, match="classes not in"):
        m.partial_fit(_X, y + 5)
    with pytest.raises(ValueError, match="features"):
        m.partial_fit(_X[:, :3], y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(_X, y, classes=[0, 1, 2])
    # a class absent from the first batch is still learnable later
    m2 = MLPClassifier(hidden_layer_sizes=(16,), random_state=0).partial_fit(
        _X[y < 2], y[y < 2], classes=[0, 1, 2]
    )
    assert m2.predict_proba(_X).shape == (len(_X), 3)
    r = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    yr = TARGETS["regression"][2]
    for _ in range(20):
        r.partial_fit(_X, yr)
    assert r.n_iter_ == 1 and len(r.loss_curve_) == 20 and r.loss_curve_[-1] < r.loss_curve_[0]


def test_early_stopping_restores_best_weights():
    y = TARGETS["multiclass"][2]
    params = {
        "hidden_layer_sizes": (16,),
        "early_stopping": True,
        "validation_fraction": 0.2,
        "n_iter_no_change": 5,
        "learning_rate_init": 0.05,
        "max_iter": 300,
        "random_state": 3,
    }
    m = MLPClassifier(**params).fit(_X, y)
    assert m.n_iter_ < 300 and m.best_loss_ is None
    assert len(m.validation_scores_) == m.n_iter_ == len(m.loss_curve_)
    best = int(np.argmax(m.validation_scores_))
    assert m.best_validation_score_ == m.validation_scores_[best]
    assert (
        m.n_iter_ == best + 1 + 5 + 1
    )  # stops when n_iter_no_change epochs after the best did not improve by tol
    # training is deterministic: a run stopped at the best epoch ends with the weights the first
    # run restored
    m_best = MLPClassifier(**{**params, "max_iter": best + 1}).fit(_X, y)
    for a, b in zip(m.coefs_ + m.intercepts_, m_best.coefs_ + m_best.intercepts_):
        np.testing.assert_array_equal(a, b)
    r = MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=300, random_state=0).fit(
        _X, TARGETS["regression"][2]
    )
    assert r.best_validation_score_ == max(r.validation_scores_) and r.best_validation_score_ > 0.5
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.01).fit(
            _X[:40], TARGETS["regression"][2][:40]
        )


def test_warm_start_continues():
    y = TARGETS["regression"][2]
    m = MLPRegressor(hidden_layer_sizes=(16,), max_iter=10, warm_start=True, random_state=0).fit(_X, y)
    first = list(m.loss_curve_)
    m.fit(_X, y)
    cold = MLPRegressor(hidden_layer_sizes=(16,), max_iter=10, random_state=0).fit(_X, y)
    assert len(m.loss_curve_) == 20 and m.loss_curve_[:10] == first and m.loss_curve_[10] < first[0]
    assert cold.loss_curve_ == first  # without warm_start a refit starts over, identically


def test_n_threads_restored_and_same_results():
    y = TARGETS["multiclass"][2]
    before = mc.get_num_threads()
    mc.set_num_threads(1)
    try:
        a = MLPClassifier(max_iter=5, random_state=0, n_threads=2).fit(_X, y)
        assert mc.get_num_threads() == 1
        a.predict(_X)
        assert mc.get_num_threads() == 1
        b = MLPClassifier(max_iter=5, random_state=0).fit(_X, y)
        np.testing.assert_allclose(a.predict_proba(_X), b.predict_proba(_X), rtol=1e-5, atol=1e-6)
    finally:
        mc.set_num_threads(before)


def test_sparse_input_is_densified():
    y = TARGETS["multiclass"][2]
    Xs = _X.copy()
    Xs[np.abs(Xs) < 0.8] = 0.0
    dense = MLPClassifier(max_iter=5, random_state=0).fit(Xs, y)
    sparse = MLPClassifier(max_iter=5, random_state=0).fit(sp.csr_matrix(Xs), y)
    np.testing.assert_array_equal(dense.predict_proba(Xs), sparse.predict_proba(sp.csc_matrix(Xs)))


def test_verbose_prints_sklearn_format():
    buf = io.StringIO()
    with redirect_stdout(buf):
        MLPClassifier(max_iter=2, verbose=True, random_state=0).fit(_X, TARGETS["multiclass"][2])
    assert buf.getvalue().splitlines()[0].startswith("Iteration 1, loss = ")


@pytest.mark.parametrize(
    "param,value",
    [
        ("hidden_layer_sizes", (10, 0)),
        ("activation", "gelu"),
        ("solver", "rmsprop"),
        ("alpha", -1.0),
        ("batch_size", 0),
        ("learning_rate", "cyclic"),
        ("learning_rate_init", 0.0),
        ("max_iter", 0),
        ("tol", -1.0),
        ("momentum", 1.5),
        ("validation_fraction", 1.0),
        ("beta_1", 1.0),
        ("epsilon", 0.0),
        ("n_iter_no_change", 0),
        ("max_fun", 0),
        ("device", "tpu"),
        ("n_threads", 0),
    ],
)
def test_bad_parameters_name_the_argument(param, value):
    m = MLPClassifier(**{param: value})  # no validation in __init__ (scikit-learn's rule)
    with pytest.raises(ValueError, match=param):
        m.fit(_X, TARGETS["multiclass"][2])


def test_regressor_loss_and_errors():
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="huber").fit(_X, TARGETS["regression"][2])
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(_X)
    with pytest.raises(AttributeError):
        MLPRegressor().coefs_  # noqa: B018
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(solver="sgd", learning_rate_init=1e3, max_iter=50, random_state=0).fit(
            _X, 1e6 * TARGETS["regression"][2]
        )


@pytest.mark.skipif(mc.cuda_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_gpu_raises():
    with pytest.raises(RuntimeError, match="cuda"):
        MLPClassifier(device="cuda").fit(_X, TARGETS["multiclass"][2])
