"""Every loss and parameter setting (tests/loss_cases.py), module path: value and d/dpred against
PyTorch autograd (float64 <= 1e-10, float32 <= 1e-5 relative), unweighted (PyTorch's mean) and
with sample weights (PyTorch's reduction="none" loss times the weights over sum(w n)), at extreme
values too, and against float64 central differences. Plus the weighted mean's edge cases: all
weights 0 (loss 0, gradient 0), rows of weight 0, negative weights, integer weights.
"""

import mlpcore as mc
import numpy as np
import pytest
from helpers import DTYPES, assert_close_fd, assert_close_torch, import_torch, numeric_grad

torch = import_torch()

import loss_cases as lc

SHAPES = [(1, 1), (1, 3), (8, 3), (33, 10)]


def _check(case, pred, target, w, dtype, where):
    c = pred.shape[1]
    loss = case.make(c)
    value = loss(pred, target, w)
    grad = loss.backward()
    assert isinstance(value, float)
    assert grad.shape == pred.shape and grad.dtype == np.dtype(dtype)
    pred_t = torch.tensor(pred, requires_grad=True)
    w_t = None if w is None else torch.tensor(np.asarray(w, dtype=dtype))
    want = lc.torch_value(case, pred_t, lc.torch_target(case, target), c, w_t)
    want.backward()
    assert_close_torch(np.array(value), want, dtype, where + " value")
    assert_close_torch(grad, pred_t.grad, dtype, where + " d/dpred")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("b,c", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("name", lc.NAMES)
def test_loss_vs_torch(name, b, c, dtype):
    case = lc.CASES[name]
    rng = np.random.default_rng(b * 100 + c)
    pred = lc.make_pred(case, rng, b, c, dtype)
    target = lc.make_target(case, rng, b, c, dtype)
    _check(case, pred, target, None, dtype, f"{name} B={b} C={c}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("b,c", SHAPES[1:], ids=lambda s: str(s))
@pytest.mark.parametrize("name", lc.NAMES)
def test_weighted_loss_vs_torch(name, b, c, dtype):
    case = lc.CASES[name]
    rng = np.random.default_rng(7 * b + c)
    pred = lc.make_pred(case, rng, b, c, dtype)
    target = lc.make_target(case, rng, b, c, dtype)
    w = rng.uniform(0.0, 3.0, b).astype(dtype)
    w[::4] = 0.0  # rows of weight 0 among the others
    w[0] = 1.5
    _check(case, pred, target, w, dtype, f"{name} weighted B={b} C={c}")


# Extreme but finite: logits far outside exp's range (CE, BCE), huge residuals (regression), log-rates
# up to exp's limit and far below it, rates near 0 (Poisson without log input).
def _extreme_pred(case, dtype):
    big = 1e6 if np.dtype(dtype) == np.float32 else 1e150
    if case.pred == "positive":
        return np.array([[1e-12, 1e-3, 50.0], [3e4, 1e-30, 1.0]], dtype=dtype)
    if case.target == "counts":
        return np.array([[80.0, -1000.0, 0.0], [-80.0, 30.0, 1e-3]], dtype=dtype)
    if case.target == "values":
        return np.array([[big, -big, 0.0], [1e-3, -1e-3, 1.0]], dtype=dtype)
    return np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("weighted", [False, True], ids=["mean", "weighted"])
@pytest.mark.parametrize("name", lc.NAMES)
def test_loss_extreme_values_vs_torch(name, weighted, dtype):
    case = lc.CASES[name]
    pred = _extreme_pred(case, dtype)
    target = {"labels": np.array([1, 2]), "values": np.array([[0.0, 1.0, -2.0], [3.0, 0.0, 1.0]], dtype=dtype),
              "counts": np.array([[0.0, 1.0, 7.0], [3.0, 2.0, 0.0]], dtype=dtype),
              "probs": np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.3]], dtype=dtype)}[case.target]
    w = np.array([0.25, 2.0], dtype=dtype) if weighted else None
    _check(case, pred, target, w, dtype, f"{name} extreme")


@pytest.mark.parametrize("name", ["l1", "huber_0.3", "huber_4", "smooth_l1_0.3", "smooth_l1_0"])
def test_kinks_follow_torch(name):
    """At d = 0 and |d| = delta / beta exactly, the one-sided choices are PyTorch's."""
    case = lc.CASES[name]
    kink = {"huber_0.3": 0.3, "huber_4": 4.0, "smooth_l1_0.3": 0.3}.get(name, 0.0)
    target = np.array([[1.0, 1.0, 1.0, -2.0]])
    pred = target + np.array([[0.0, kink, -kink, 0.5]])
    _check(case, pred, target, None, np.float64, f"{name} kinks")


@pytest.mark.parametrize("weighted", [False, True], ids=["mean", "weighted"])
@pytest.mark.parametrize("name", lc.NAMES)
def test_loss_gradient_vs_central_differences(name, weighted):
    case = lc.CASES[name]
    rng = np.random.default_rng(11)
    b, c = 5, 4
    pred = lc.make_pred(case, rng, b, c, np.float64, scale=1.5)
    target = lc.make_target(case, rng, b, c, np.float64)
    w = rng.uniform(0.2, 2.0, b) if weighted else None
    loss = case.make(c)
    loss(pred, target, w)
    grad = loss.backward()
    numeric = numeric_grad(lambda: loss(pred, target, w), pred)
    assert_close_fd(grad, numeric, f"{name} {'weighted ' if weighted else ''}d/dpred")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", lc.NAMES)
def test_all_zero_weights_give_zero_loss_and_gradient(name, dtype):
    """sum(w n) = 0: loss 0 and gradient 0 (PyTorch's 0/0 would be nan)."""
    case = lc.CASES[name]
    rng = np.random.default_rng(3)
    pred = lc.make_pred(case, rng, 6, 3, dtype)
    target = lc.make_target(case, rng, 6, 3, dtype)
    loss = case.make(3)
    assert loss(pred, target, np.zeros(6, dtype=dtype)) == 0.0
    assert np.all(loss.backward() == 0.0)


def test_zero_class_weights_of_every_target_give_zero_loss():
    """Class weights that zero every target class: PyTorch gives nan, the core's rule gives 0."""
    loss = mc.CrossEntropyLoss(weight=[0.0, 0.0, 1.0])
    assert loss(np.zeros((2, 3)), np.array([0, 1])) == 0.0
    assert np.all(loss.backward() == 0.0)


def test_zero_weight_rows_contribute_nothing_even_when_their_loss_overflows():
    """A row of weight 0 is not there: exp(1000) = inf in its Poisson term does not make nan."""
    pred = np.array([[1000.0], [0.5]])
    target = np.array([[1.0], [2.0]])
    loss = mc.PoissonNLLLoss()
    value = loss(pred, target, np.array([0.0, 2.0]))
    assert value == pytest.approx(np.exp(0.5) - 2.0 * 0.5, rel=1e-15)
    g = loss.backward()
    assert g[0, 0] == 0.0 and g[1, 0] == pytest.approx(np.exp(0.5) - 2.0, rel=1e-15)


@pytest.mark.parametrize("name", ["mse", "ce_weight_smooth", "bce_pos_weight", "poisson"])
def test_negative_weights_follow_the_formula(name):
    """Negative weights are allowed (PyTorch's arithmetic and scikit-learn's MLP accept them)."""
    case = lc.CASES[name]
    rng = np.random.default_rng(4)
    pred = lc.make_pred(case, rng, 6, 3, np.float64)
    target = lc.make_target(case, rng, 6, 3, np.float64)
    w = np.array([1.0, -0.5, 2.0, -1.0, 0.5, 3.0])
    _check(case, pred, target, w, np.float64, f"{name} negative weights")


def test_weights_of_other_types_equal_float_weights():
    """int, bool and list weights (and float32 weights for a float64 loss) are converted exactly."""
    rng = np.random.default_rng(5)
    pred, target = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    loss = mc.HuberLoss(delta=0.5)
    want = loss(pred, target, np.array([1.0, 2.0, 0.0, 3.0]))
    g = loss.backward()
    for w in (np.array([1, 2, 0, 3]), [1, 2, 0, 3], np.array([1, 2, 0, 3], dtype=np.uint8),
              np.array([1.0, 2.0, 0.0, 3.0], dtype=np.float32)):
        assert loss(pred, target, w) == want
        np.testing.assert_array_equal(loss.backward(), g)
    assert loss(pred, target, np.array([True, False, True, True])) == loss(pred, target, [1.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", lc.NAMES)
def test_unit_weights_give_the_unweighted_numbers_bit_for_bit(name, dtype):
    case = lc.CASES[name]
    rng = np.random.default_rng(9)
    pred = lc.make_pred(case, rng, 7, 3, dtype)
    target = lc.make_target(case, rng, 7, 3, dtype)
    loss = case.make(3)
    v0, g0 = loss(pred, target), loss.backward()
    v1, g1 = loss(pred, target, np.ones(7, dtype=dtype)), loss.backward()
    assert v1 == v0
    np.testing.assert_array_equal(g1, g0)
