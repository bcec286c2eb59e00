"""The scikit-learn adapter keeps its adapted learning rate through pickling."""

import numpy as np
import pytest



def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5).astype(np.int64)


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_sklearn_unpickle_keeps_the_adapted_learning_rate(schedule):
    pytest.importorskip("sklearn")
    import pickle
    import warnings

    from mlpcore.sklearn import MLPClassifier

    X, y = _blobs(80, seed=1)
    clf = MLPClassifier(hidden_layer_sizes=(6,), solver="sgd", learning_rate=schedule, learning_rate_init=0.1,
                        tol=1e9, n_iter_no_change=1, max_iter=6, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is reached on purpose
        clf.fit(X, y)
    assert clf._learning_rate < 0.1  # adapted during fit
    copy = pickle.loads(pickle.dumps(clf))
    assert copy._learning_rate == clf._learning_rate
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)  # the next epoch steps with the adapted rate on both
    for a, b in zip(clf.coefs_, copy.coefs_):
        np.testing.assert_array_equal(a, b)
