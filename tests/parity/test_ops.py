"""Every op, forward and backward, through the public modules, against PyTorch autograd
(relative error <= 1e-10 in float64, <= 1e-5 in float32, same dtype on both sides).

Each test builds the mlpcore module and its PyTorch twin, runs forward on the same input and
backward on the same upstream gradient, and compares the output, d/dx and every parameter
gradient with ``helpers.assert_close_torch``.
"""

import numpy as np
import pytest

import mlpcore as mc
from helpers import (
    ACTIVATIONS,
    DTYPES,
    LOSSES,
    assert_close_torch,
    import_torch,
    make_target,
    mc_activation,
    mc_loss,
    torch_activation,
    torch_loss,
    torch_target,
)

torch = import_torch()

# (batch, width) shapes: a single value, odd sizes (vector-loop tails), a wider block.
SHAPES = [(1, 1), (7, 13), (33, 64)]


# ----- Linear ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch,fin,fout", [(1, 1, 1), (5, 13, 7), (17, 64, 33), (64, 100, 130), (128, 784, 256)])
def test_linear_vs_torch(batch, fin, fout, bias, dtype):
    rng = np.random.default_rng(batch * 1000 + fin)
    lin = mc.Linear(fin, fout, bias=bias, dtype=dtype, seed=3)
    assert lin.weight.shape == (fout, fin) and (lin.bias is None) == (not bias)
    if bias:  # a non-zero bias, so that it matters in the forward
        lin.bias.data = rng.standard_normal(fout)
    x = rng.standard_normal((batch, fin)).astype(dtype)
    g = rng.standard_normal((batch, fout)).astype(dtype)

    lin.zero_grad()
    y = lin(x)
    gx = lin.backward(g)

    w_t = torch.tensor(lin.weight.data.copy(), requires_grad=True)
    b_t = torch.tensor(lin.bias.data.copy(), requires_grad=True) if bias else None
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch.nn.functional.linear(x_t, w_t, b_t)
    y_t.backward(torch.from_numpy(g))

    where = f"Linear({fin},{fout},bias={bias}) B={batch}"
    assert y.dtype == np.dtype(dtype) and gx.dtype == np.dtype(dtype)
    assert y.shape == (batch, fout) and gx.shape == (batch, fin)
    assert_close_torch(y, y_t, dtype, where + " forward")
    assert_close_torch(gx, x_t.grad, dtype, where + " d/dx")
    assert_close_torch(lin.weight.grad, w_t.grad, dtype, where + " d/dweight")
    if bias:
        assert_close_torch(lin.bias.grad, b_t.grad, dtype, where + " d/dbias")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_linear_grad_accumulates_like_torch(dtype):
    """Two backward calls without zero_grad add up, as PyTorch's .grad does."""
    rng = np.random.default_rng(0)
    lin = mc.Linear(6, 4, dtype=dtype, seed=1)
    x1, x2 = rng.standard_normal((3, 6)).astype(dtype), rng.standard_normal((5, 6)).astype(dtype)
    g1, g2 = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((5, 4)).astype(dtype)
    lin.zero_grad()
    lin(x1)
    lin.backward(g1)
    lin(x2)
    lin.backward(g2)
    w_t = torch.tensor(lin.weight.data.copy(), requires_grad=True)
    b_t = torch.tensor(lin.bias.data.copy(), requires_grad=True)
    for x, g in ((x1, g1), (x2, g2)):
        torch.nn.functional.linear(torch.from_numpy(x), w_t, b_t).backward(torch.from_numpy(g))
    assert_close_torch(lin.weight.grad, w_t.grad, dtype, "Linear accumulated d/dweight")
    assert_close_torch(lin.bias.grad, b_t.grad, dtype, "Linear accumulated d/dbias")


# ----- activations -------------------------------------------------------------------------------------

def _check_activation(name, param, x, dtype, where):
    rng = np.random.default_rng(7)
    g = rng.standard_normal(x.shape).astype(dtype)
    act = mc_activation(name, param)
    y = act(x)
    gx = act.backward(g)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch_activation(name, param)(x_t)
    y_t.backward(torch.from_numpy(g))
    assert y.dtype == np.dtype(dtype) and gx.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
    assert_close_torch(y, y_t, dtype, where + " forward")
    assert_close_torch(gx, x_t.grad, dtype, where + " d/dx")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name,param", ACTIVATIONS)
def test_activation_vs_torch(name, param, shape, dtype):
    x = (3.0 * np.random.default_rng(shape[0] * 31 + shape[1]).standard_normal(shape)).astype(dtype)
    _check_activation(name, param, x, dtype, f"{name}({param}) {shape}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,param", ACTIVATIONS)
def test_activation_extreme_inputs_vs_torch(name, param, dtype):
    """Large magnitudes (saturation, exp overflow territory) stay finite and match PyTorch."""
    x = np.array([[-1000.0, -80.0, -30.0, -1e-3, 0.5, 30.0, 80.0, 1000.0],
                  [700.0, -700.0, 88.0, -88.0, 20.0, -20.0, 1e-8, -1e-8]], dtype=dtype)
    _check_activation(name, param, x, dtype, f"{name}({param}) extreme")


def test_gelu_is_the_exact_erf_form():
    """GELU is 0.5 x (1 + erf(x / sqrt 2)), not the tanh approximation (they differ by ~1e-4)."""
    x = np.linspace(-4, 4, 81).reshape(9, 9)
    x_t = torch.from_numpy(x)
    y = mc.GELU()(x)
    exact = torch.nn.functional.gelu(x_t, approximate="none").numpy()
    approx = torch.nn.functional.gelu(x_t, approximate="tanh").numpy()
    assert np.max(np.abs(y - exact)) < 1e-14
    assert np.max(np.abs(y - approx)) > 1e-5


def test_softmax_rows_sum_to_one():
    x = 5.0 * np.random.default_rng(0).standard_normal((10, 7))
    y = mc.Softmax()(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert np.all(y > 0)


# ----- losses --------------------------------------------------------------------------------------------

def _check_loss(name, pred, target, dtype, where):
    loss = mc_loss(name)
    value = loss(pred, target)
    grad = loss.backward()
    assert isinstance(value, float)
    assert grad.shape == pred.shape and grad.dtype == np.dtype(dtype)
    pred_t = torch.tensor(pred, requires_grad=True)
    t = torch_target(name, np.asarray(target))
    if name == "mse" and t.ndim == 1:
        t = t.reshape(-1, 1)
    value_t = torch_loss(name)(pred_t, t)
    value_t.backward()
    assert_close_torch(np.array(value), value_t, dtype, where + " value")
    assert_close_torch(grad, pred_t.grad, dtype, where + " d/dpred")


# (loss, batch, classes); cross-entropy with one class is identically 0 (test_cross_entropy_one_class).
LOSS_CASES = [(name, b, c) for name in LOSSES for b, c in [(1, 1), (1, 2), (8, 3), (33, 10), (64, 65)]
              if not (name == "cross_entropy" and c == 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,batch,classes", LOSS_CASES)
def test_loss_vs_torch(name, batch, classes, dtype):
    rng = np.random.default_rng(batch * 100 + classes)
    pred = (2.0 * rng.standard_normal((batch, classes))).astype(dtype)
    target = make_target(name, rng, batch, classes, dtype)
    _check_loss(name, pred, target, dtype, f"{name} B={batch} C={classes}")


def test_cross_entropy_one_class():
    loss = mc.CrossEntropyLoss()
    assert loss(np.array([[3.0], [-2.0]]), np.array([0, 0])) == 0.0
    assert np.all(loss.backward() == 0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.int16, np.uint8, np.uint64])
def test_cross_entropy_accepts_any_integer_label_dtype(label_dtype, dtype):
    rng = np.random.default_rng(5)
    pred = rng.standard_normal((9, 4)).astype(dtype)
    labels = rng.integers(0, 4, size=9)
    _check_loss("cross_entropy", pred, labels.astype(label_dtype), dtype, "cross_entropy labels")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_mse_single_column_accepts_1d_target(dtype):
    rng = np.random.default_rng(6)
    pred = rng.standard_normal((12, 1)).astype(dtype)
    _check_loss("mse", pred, rng.standard_normal(12).astype(dtype), dtype, "mse (B,) target")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["cross_entropy", "bce_with_logits"])
def test_loss_extreme_logits_vs_torch(name, dtype):
    """Logits of +-1000 (exp overflows without log-sum-exp / the stable BCE form): finite, as PyTorch."""
    pred = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [88.0, -88.0, 30.0],
                     [0.0, 0.0, 0.0]], dtype=dtype)
    if name == "cross_entropy":
        target = np.array([1, 0, 2, 1])
    else:
        target = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.3]], dtype=dtype)
    _check_loss(name, pred, target, dtype, f"{name} extreme logits")


def test_loss_backward_is_for_the_last_call():
    rng = np.random.default_rng(8)
    loss = mc.MSELoss()
    p1, p2 = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    t = rng.standard_normal((4, 2))
    loss(p1, t)
    loss(p2, t)
    np.testing.assert_allclose(loss.backward(), 2.0 * (p2 - t) / p2.size, rtol=1e-14)


# ----- dtype conversion at the edge ------------------------------------------------------------------------

def test_float32_input_to_float64_model_is_converted():
    """A float32 input to a float64 module is converted (exactly) and computes in float64."""
    rng = np.random.default_rng(9)
    lin = mc.Linear(5, 3, dtype=np.float64, seed=0)
    x32 = rng.standard_normal((4, 5)).astype(np.float32)
    y = lin(x32)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, lin(x32.astype(np.float64)))
