"""The scikit-learn estimators predict in the core's batch-invariant mode: predicting a subset
of rows gives exactly those rows of predicting the whole (scikit-learn's
check_methods_subset_invariance), bit for bit, at any thread count, every time."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")

import mlpcore as mc
from mlpcore.sklearn import MLPClassifier, MLPRegressor

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.skipif(not hasattr(mc._core, "set_batch_invariant"),
                       reason="this core has no batch-invariant mode (_core.set_batch_invariant) yet"),
]


def _data(n=300, f=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


@pytest.mark.parametrize("threads", [1, 2])
def test_predict_of_a_subset_is_those_rows_of_predict_of_the_whole(threads):
    X, y = _data()
    mc.set_num_threads(1)
    clf = MLPClassifier(hidden_layer_sizes=(96, 64), max_iter=5, random_state=0).fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(96, 64), max_iter=5, random_state=0).fit(X, X[:, :3] @ [1.0, -1.0, 2.0])
    mc.set_num_threads(threads)
    before = mc._core.get_batch_invariant()
    methods = [clf.predict_proba, clf.predict_log_proba, clf.predict, reg.predict]
    whole = [f(X) for f in methods]
    rng = np.random.default_rng(threads)
    for trial in range(60):
        size = [1, 2, 3, 7, 64, 257][trial % 6]
        idx = rng.choice(len(X), size=size, replace=False)
        for f, w in zip(methods, whole):
            np.testing.assert_array_equal(f(X[idx]), w[idx])
    assert mc._core.get_batch_invariant() == before  # the mode is switched on for the call only


def test_subsets_match_the_whole_across_dtypes_solvers_and_thread_counts():
    """Many subsets, the thread count switching between 1 and 2 from one call to the next, for
    float32 and float64 parameters, the L-BFGS solver and the Poisson regressor: every subset's
    predictions are bit for bit the rows of predicting the whole at one thread."""
    X, y = _data(n=257, f=30, seed=1)
    before = mc.get_num_threads()
    mc.set_num_threads(1)
    ests = [
        MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=20, solver="lbfgs", random_state=0).fit(X, y),
        MLPClassifier(hidden_layer_sizes=(80,), max_iter=3, random_state=0).fit(X.astype(np.float32), y),
        MLPRegressor(hidden_layer_sizes=(48,), max_iter=3, loss="poisson", random_state=0).fit(X, y),
    ]
    methods = [f for e in ests for f in ([e.predict, e.predict_proba] if hasattr(e, "predict_proba") else [e.predict])]
    inputs = [X, X, X.astype(np.float32), X.astype(np.float32), X]
    whole = [f(x) for f, x in zip(methods, inputs)]
    rng = np.random.default_rng(7)
    try:
        for trial in range(200):
            mc.set_num_threads(1 + trial % 2)
            idx = rng.choice(len(X), size=int(rng.integers(1, len(X) + 1)), replace=False)
            for f, x, w in zip(methods, inputs, whole):
                np.testing.assert_array_equal(f(x[idx]), w[idx])
    finally:
        mc.set_num_threads(before)
