"""training.metrics, the one place for accuracy, probabilities and regression metrics: scipy and
scikit-learn as oracles, stability at extreme logits."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.training import metrics

CE, BCE, MSE = mc.CrossEntropyLoss.kind, mc.BCEWithLogitsLoss.kind, mc.MSELoss.kind


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_match_scipy_and_stay_finite(dtype):
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(50, 4)) * 5).astype(dtype)
    z[0] = [1e4, -1e4, 0, 3]  # extreme logits: no overflow warning (warnings are errors here)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    p = metrics.probabilities(CE, z)
    assert p.dtype == dtype and np.isfinite(p).all()
    np.testing.assert_allclose(p, special.softmax(z.astype(np.float64), axis=1), rtol=tol, atol=tol)
    np.testing.assert_allclose(metrics.probabilities(BCE, z), special.expit(z.astype(np.float64)), rtol=tol, atol=tol)
    lp = metrics.log_probabilities(CE, z)
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(lp, special.log_softmax(z.astype(np.float64), axis=1), rtol=tol, atol=tol)
    np.testing.assert_allclose(metrics.log_probabilities(BCE, z), special.log_expit(z.astype(np.float64)),
                               rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="predict_proba"):
        metrics.probabilities(MSE, z)


def test_accuracy_element_wise_and_subset():
    out = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert metrics.accuracy(BCE, out, y) == pytest.approx(4 / 6)  # Keras' binary accuracy
    assert metrics.accuracy(BCE, out, y, subset=True) == pytest.approx(1 / 3)  # scikit-learn's
    assert metrics.accuracy(CE, out, np.array([0, 0, 1])) == pytest.approx(2 / 3)  # ties: the first arg-max
    assert metrics.correct_count(out, np.array([0, 0, 0])) == 3


def test_regression_metrics_match_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.normal(size=(40, 3))
    y[:, 2] = 1.5  # a constant column
    out = y + 0.3 * rng.normal(size=y.shape)
    m = metrics.regression_metrics(out, y)
    assert m["mse"] == pytest.approx(skm.mean_squared_error(y, out), rel=1e-12)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, out), rel=1e-12)
    assert m["r2"] == pytest.approx(skm.r2_score(y, out), rel=1e-12)


def test_epoch_logs():
    assert metrics.running_logs(CE, 0.5, 30, 40) == {"loss": 0.5, "accuracy": 0.75}
    assert metrics.running_logs(MSE, 0.5, 0, 40) == {"loss": 0.5, "mse": 0.5}
    assert metrics.running_logs(BCE, 0.5, 0, 40) == {"loss": 0.5}
    logs = metrics.output_logs(MSE, 0.25, np.zeros((2, 1)), np.array([[0.5], [-0.5]]))
    assert logs == {"loss": 0.25, "mse": 0.25, "mae": 0.5, "r2": 0.0}
