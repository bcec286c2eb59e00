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
