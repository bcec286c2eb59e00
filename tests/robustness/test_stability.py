"""Numerical stability at extreme inputs, against PyTorch.

softmax, log-softmax (inside cross-entropy), cross-entropy, sigmoid, BCE with logits, ELU, SiLU,
GELU (and tanh / leaky ReLU) must stay finite and agree with PyTorch, values and gradients, for
inputs up to +-1e4 in float32 (and up to float32's largest value where the result is finite), and
at the float64 extremes where exp() overflows (+-700, +-710) or squares overflow (+-1e160, +-1e300).

Comparison: elementwise |got - want| <= rtol |want| + atol, rtol = 2e-6 (f32) / 1e-13 (f64);
atol = 8 ulps of 1 for activations (their outputs and derivatives are O(1) or pass x through), of
the loss for loss values and of the row's largest entry for loss gradients; never below the
smallest normal number. Where torch's own float32 kernel overflows on a finite input (GELU at
3.4e38), the reference is torch in float64 rounded to float32.

Found and fixed here: cross-entropy computed (m + log s) - x_y, which loses log s next to a huge
max m (rows of equal logits -1e300 gave a loss of 0 instead of log 3; -1e4 in float32 was off by
2e-5); it now computes log s - (x_y - m), as log_softmax does.
"""

import mlpcore as mc
import numpy as np
import pytest
from helpers import import_torch, mc_activation, torch_activation

torch = import_torch()
F = torch.nn.functional

F32_MAX = float(np.finfo(np.float32).max)
# row of extreme inputs per dtype (several rows: softmax/CE see an extreme next to moderate values)
EXTREMES = {
    np.float32: [
        1e4,
        -1e4,
        1e3,
        -1e3,
        100.0,
        -100.0,
        88.8,
        -88.8,
        104.0,
        -104.0,
        50.0,
        -50.0,
        20.0,
        -20.0,
        1.0,
        -1.0,
        1e-3,
        -1e-3,
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1e30,
        -1e30,
        F32_MAX,
        -F32_MAX,
    ],
    np.float64: [
        1e300,
        -1e300,
        1e160,
        -1e160,
        1e4,
        -1e4,
        710.0,
        -710.0,
        700.0,
        -700.0,
        745.2,
        -745.2,
        40.0,
        -40.0,
        1.0,
        -1.0,
        1e-300,
        -1e-300,
        0.0,
        -0.0,
        1e-320,
        -1e-320,
    ],
}
RTOL = {np.float32: 2e-6, np.float64: 1e-13}
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
ACTS = [
    ("sigmoid", 0.0),
    ("softmax", 0.0),
    ("elu", 1.0),
    ("elu", 0.5),
    ("silu", 0.0),
    ("gelu", 0.0),
    ("tanh", 0.0),
    ("leaky_relu", 0.01),
]


def extreme_matrix(dtype, cols=5, seed=0):
    """Rows mixing the extremes with each other and with moderate values: every extreme appears
    in several rows and positions."""
    vals = np.array(EXTREMES[dtype], dtype=np.float64)
    rng = np.random.default_rng(seed)
    rows = [np.resize(np.roll(vals, -k), cols) for k in range(len(vals))]  # each extreme leads one row
    rows += [rng.permutation(np.r_[vals, rng.standard_normal(cols)])[:cols] for _ in range(8)]
    rows.append(np.full(cols, vals[0]))  # all equal and huge: softmax must be uniform
    rows.append(np.full(cols, vals[1]))
    return np.array(rows).astype(dtype)


def assert_close(got, want, dtype, where, scale=None):
    """Elementwise comparison; atol = a few ulps of the largest |want| of each row (or `scale`)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, where
    assert np.all(np.isfinite(got) == np.isfinite(want)), f"{where}: finiteness differs\n{got}\n{want}"
    fin = np.isfinite(want)
    np.testing.assert_array_equal(got[~fin], want[~fin], err_msg=where)
    if scale is None:
        scale = np.max(np.where(fin, np.abs(want), 0.0), axis=-1, keepdims=True) if want.ndim else abs(want)
    # a few ulps of the row's scale; never below the smallest normal number (torch's vectorised
    # exp flushes results in the subnormal range to 0, ours keeps them: both are right)
    atol = np.maximum(8 * EPS[dtype] * scale, np.finfo(dtype).tiny)
    err = np.abs(got - want)
    bound = RTOL[dtype] * np.abs(want) + atol
    bad = fin & (err > bound)
    assert not np.any(bad), (
        f"{where}: {int(bad.sum())} values off; worst at {np.argwhere(bad)[:3].tolist()}: "
        f"got {got[bad][:3]}, want {want[bad][:3]}"
    )


def torch_act_grad(name, param, x, g):
    xt = torch.tensor(x, requires_grad=True)
    y = torch_activation(name, param)(xt)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,param", ACTS, ids=[f"{n}{p or ''}" for n, p in ACTS])
def test_activation_at_extremes_matches_torch(name, param, dtype):
    x = extreme_matrix(dtype)
    g = np.random.default_rng(1).uniform(0.5, 1.5, x.shape).astype(dtype)
    act = mc_activation(name, param)
    y = act(x)
    gx = act.backward(g)
    y_t, gx_t = torch_act_grad(name, param, x, g)
    if dtype == np.float32:
        # Where torch's float32 kernel overflows on a finite input (GELU at 3.4e38 computes
        # x * (1 + erf) before halving), compare with torch in float64, rounded to float32.
        y_hi, gx_hi = torch_act_grad(name, param, x.astype(np.float64), g.astype(np.float64))
        with np.errstate(over="ignore"):
            y_t = np.where(np.isfinite(y_t), y_t, y_hi.astype(np.float32))
            gx_t = np.where(np.isfinite(gx_t), gx_t, gx_hi.astype(np.float32))
    finite_in = np.isfinite(x)
    assert np.all(np.isfinite(y)), f"{name}: non-finite output for finite input"
    if name not in ("elu", "leaky_relu", "silu", "gelu") or dtype == np.float64:
        # identity-like ops scale a gradient of ~1 by ~1: finite; elsewhere bounded derivatives
        assert np.all(np.isfinite(gx[finite_in]))
    assert_close(y, y_t, dtype, f"{name} forward", scale=1.0)
    assert_close(gx, gx_t, dtype, f"{name} backward", scale=1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,param", ACTS, ids=[f"{n}{p or ''}" for n, p in ACTS])
def test_fused_compiled_activation_at_extremes(name, param, dtype):
    """The compiled network fuses bias + activation (and its backward with the bias gradient):
    an identity Linear in front must give exactly the module-path result."""
    x = extreme_matrix(dtype)
    n = x.shape[1]
    lin = mc.Linear(n, n, dtype=dtype, seed=0)
    lin.weight.data = np.eye(n)
    lin.bias.data = np.zeros(n)
    model = mc.Sequential(lin, mc_activation(name, param))
    want = mc_activation(name, param)(x)
    np.testing.assert_array_equal(model.compiled().predict(x), want)
    np.testing.assert_array_equal(model(x), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_softmax_rows_sum_to_one_and_handle_ties(dtype):
    x = extreme_matrix(dtype)
    p = mc.Softmax()(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=4 * EPS[dtype] * x.shape[1])
    assert np.all(p >= 0)
    np.testing.assert_array_equal(p[-1], np.full(x.shape[1], 1.0 / x.shape[1], dtype))  # all equal, huge
    np.testing.assert_array_equal(p[-2], np.full(x.shape[1], 1.0 / x.shape[1], dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_cross_entropy_at_extremes_matches_torch(dtype):
    """Cross-entropy = log-softmax + NLL: finite and exact for logits up to +-1e4 (f32) / +-1e300
    (f64), including the worst case of the true class at the very bottom."""
    top = 1e4 if dtype == np.float32 else 1e300
    logits = np.array(
        [
            [top, -top, 0.0],
            [top, -top, 0.0],
            [-top, -top, -top],
            [top, top, -top],
            [0.0, 1.0, 2.0],
            [top, 0.5 * top, -top],
            [1e-30, 0.0, -1e-30],
            [100.0, -100.0, 50.0],
        ],
        dtype=dtype,
    )
    labels = np.array([0, 1, 2, 2, 0, 1, 2, 1])
    for rows in (slice(None), [1], [2], [3], [5]):  # the whole batch and single worst-case rows
        pred, y = logits[rows], labels[rows]
        loss = mc.CrossEntropyLoss()
        value = loss(pred, y)
        grad = loss.backward()
        pt = torch.tensor(pred, requires_grad=True)
        vt = F.cross_entropy(pt, torch.tensor(y))
        vt.backward()
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        assert_close(
            np.array(value), vt.detach().numpy(), dtype, f"CE value rows={rows}", scale=abs(vt.item())
        )
        assert_close(grad, pt.grad.numpy(), dtype, f"CE grad rows={rows}")
    # the worst row alone: the loss is the full gap, 2e4 (f32) / 2e300 (f64), exactly
    assert mc.CrossEntropyLoss()(logits[[1]], labels[[1]]) == pytest.approx(2 * top, rel=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_bce_with_logits_at_extremes_matches_torch(dtype):
    x = extreme_matrix(dtype, cols=4)
    if dtype == np.float32:
        x = np.clip(x, -1e4, 1e4)  # beyond, max(x, 0) - x * t itself overflows for a soft target
    t = np.resize(np.array([0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.9]), x.size).reshape(x.shape).astype(dtype)
    loss = mc.BCEWithLogitsLoss()
    value = loss(x, t)
    grad = loss.backward()
    xt = torch.tensor(x, requires_grad=True)
    vt = F.binary_cross_entropy_with_logits(xt, torch.tensor(t))
    vt.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert_close(np.array(value), vt.detach().numpy(), dtype, "BCE value", scale=abs(vt.item()))
    assert_close(grad, xt.grad.numpy(), dtype, "BCE grad", scale=1.0 / x.size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_sigmoid_and_bce_saturate_exactly(dtype):
    """Far in the tails the results are the exact limits, not NaN (0 * inf) or rounding noise."""
    big = 1e4 if dtype == np.float32 else 1e300
    x = np.array([[big, -big, 0.0]], dtype)
    s = mc.Sigmoid()
    np.testing.assert_array_equal(s(x), np.array([[1.0, 0.0, 0.5]], dtype))
    np.testing.assert_array_equal(s.backward(np.ones_like(x)), np.array([[0.0, 0.0, 0.25]], dtype))
    loss = mc.BCEWithLogitsLoss()
    assert loss(np.array([[big, -big]], dtype), np.array([[1.0, 0.0]], dtype)) == 0.0
    assert loss(np.array([[big]], dtype), np.array([[0.0]], dtype)) == pytest.approx(big, rel=RTOL[dtype])
    np.testing.assert_array_equal(loss.backward(), np.array([[1.0]], dtype))


def test_training_with_huge_logits_stays_finite():
    """A compiled CE training step with logits ~1e4 in float32 gives finite loss and weights."""
    rng = np.random.default_rng(0)
    model = mc.Sequential(mc.Linear(4, 3, seed=0))
    model[0].weight.data = rng.standard_normal((3, 4)) * 2e3
    opt = mc.SGD(model.parameters(), lr=1e-6)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    net = model.compiled()
    assert np.max(np.abs(net.predict(X))) > 1e3
    value = net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 8, True, 0).loss
    assert np.isfinite(value) and value > 100
    assert all(np.all(np.isfinite(p.data)) for p in model.parameters())
