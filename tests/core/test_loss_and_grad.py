"""Network.loss_and_grad from Python: the full-batch value and flat float64 gradient that scipy's
L-BFGS-B drives (mlpcore.sklearn's solver='lbfgs'). Checked against float64 central differences
(every loss the estimators use, sample weights and the L2 term included), over parameters that
span two arenas, with a float32 network, a data set split into several passes, and the errors of
its edge."""

import mlpcore as mc
import numpy as np
import pytest
from mlpcore import _core
from mlpcore.nn.parameter import place

KINDS = {
    "mse": (mc.MSELoss(), "values"),
    "cross_entropy": (mc.CrossEntropyLoss(), "labels"),
    "bce": (mc.BCEWithLogitsLoss(), "binary"),
    "poisson": (mc.PoissonNLLLoss(), "counts"),
}


def _targets(kind: str, n: int, out: int, rng) -> np.ndarray:
    if kind == "labels":
        return rng.integers(0, out, n).astype(np.int32)
    if kind == "binary":
        return (rng.random((n, out)) > 0.5).astype(np.float64)
    if kind == "counts":
        return rng.poisson(1.5, (n, out)).astype(np.float64)
    return rng.standard_normal((n, out))


def _model(dtype=np.float64, sizes=(4, 6, 3), seed=0):
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(mc.Linear(a, b, dtype=dtype, seed=seed + i))
        if i < len(sizes) - 2:
            mods.append(mc.Tanh())
    return mc.Sequential(*mods)


def _layout(model) -> tuple:
    """(layout, params): every parameter in model.parameters() order, 2-D ones (weights) penalised."""
    params = model.parameters()
    return [(*place(p), len(p.shape) == 2) for p in params], params


def _call(net, layout, theta, loss, X, y, **kw):
    g = np.empty(theta.size)
    return net.loss_and_grad(layout, theta, g, loss.spec, X, y, **kw), g


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_matches_central_differences(name, weighted):
    loss, tkind = KINDS[name]
    rng = np.random.default_rng(1)
    model = _model()
    net = model.compiled()
    layout, params = _layout(model)
    X = rng.standard_normal((37, 4))
    y = _targets(tkind, 37, 3, rng)
    w = rng.integers(0, 4, 37).astype(np.float64) if weighted else None
    kw = {"sample_weight": w, "l2_alpha": 0.4, "value_scale": 0.7, "grad_scale": 1.9}
    theta = rng.uniform(-0.5, 0.5, sum(p.numel for p in params))
    value, g = _call(net, layout, theta, loss, X, y, **kw)
    # the value: scale * the loss's (weighted) mean + alpha / (2 s) * ||W||^2, s = n or sum(w)
    s = 37.0 if w is None else w.sum()
    at, sq = 0, 0.0
    for (_, _, numel, penalised) in layout:
        sq += float(theta[at:at + numel] @ theta[at:at + numel]) if penalised else 0.0
        at += numel
    plain, _ = _call(net, layout, theta, loss, X, y, sample_weight=w)
    assert value == pytest.approx(0.7 * plain + 0.2 / s * sq, rel=1e-12)
    # the gradient: 1.9 * d(mean loss) + alpha / s * W, against central differences of the
    # unscaled value (grad_scale and value_scale differ, as for scikit-learn's squared error)
    num = np.empty_like(theta)
    for i in range(theta.size):
        t = theta.copy()
        t[i] += 1e-6
        up, _ = _call(net, layout, t, loss, X, y, sample_weight=w)
        t[i] -= 2e-6
        down, _ = _call(net, layout, t, loss, X, y, sample_weight=w)
        num[i] = (up - down) / 2e-6
    decay = np.concatenate([np.full(n, 0.4 / s if pen else 0.0) for (_, _, n, pen) in layout])
    want = 1.9 * num + decay * theta
    assert np.max(np.abs(g - want)) <= 1e-7 * np.max(np.abs(want))


def test_layout_over_two_arenas_in_any_order():
    """A parameter whose arena is pinned (a .data view taken) is not gathered into the Sequential's
    arena: the network spans two arenas and a layout may list their parameters in any order."""
    first = mc.Linear(4, 5, dtype=np.float64, seed=3)
    _ = first.weight.data  # pins its arena
    model = mc.Sequential(first, mc.ReLU(), mc.Linear(5, 2, dtype=np.float64, seed=4))
    net = model.compiled()
    assert len(net.arenas) == 2
    layout, params = _layout(model)
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 4)), rng.standard_normal((20, 2))
    theta = np.concatenate([p.data.ravel() for p in params])
    v, g = _call(net, layout, theta, mc.MSELoss(), X, y)
    order = [3, 0, 2, 1]
    sizes = [p.numel for p in params]
    starts = np.cumsum([0] + sizes)
    theta_r = np.concatenate([theta[starts[k]:starts[k + 1]] for k in order])
    v_r, g_r = _call(net, [layout[k] for k in order], theta_r, mc.MSELoss(), X, y)
    assert v_r == v
    np.testing.assert_array_equal(g_r, np.concatenate([g[starts[k]:starts[k + 1]] for k in order]))


def test_float32_network_and_chunked_passes():
    """theta (float64) is rounded into a float32 network; with 9000 input features a 2100-row data
    set does not fit one pass in the 64 MiB workspace budget, and the passes give the float64
    reference of the same rounded parameters."""
    rng = np.random.default_rng(3)
    model = _model(np.float32, sizes=(9000, 3, 2), seed=5)
    net = model.compiled()
    layout, params = _layout(model)
    X = rng.standard_normal((2100, 9000)).astype(np.float32)
    y = rng.integers(0, 2, 2100).astype(np.int32)
    theta = rng.uniform(-0.02, 0.02, sum(p.numel for p in params))
    v, g = _call(net, layout, theta, mc.CrossEntropyLoss(), X, y)
    assert 0 < net.capacity < 2100, "the data set ran in several passes"
    for p, seg in zip(params, np.split(theta, np.cumsum([p.numel for p in params])[:-1])):
        np.testing.assert_array_equal(p.data.ravel(), seg.astype(np.float32))
    ref = _model(np.float64, sizes=(9000, 3, 2))
    rnet = ref.compiled()
    rlayout, _ = _layout(ref)
    rv, rg = _call(rnet, rlayout, theta.astype(np.float32).astype(np.float64), mc.CrossEntropyLoss(),
                   X.astype(np.float64), y)
    assert v == pytest.approx(rv, rel=1e-5)
    assert np.max(np.abs(g - rg)) <= 1e-4 * np.max(np.abs(rg))


def test_edge_errors():
    model = _model()
    net = model.compiled()
    layout, params = _layout(model)
    n = sum(p.numel for p in params)
    X, y = np.zeros((3, 4)), np.zeros((3, 3))
    spec = mc.MSELoss().spec
    with pytest.raises(ValueError, match="theta"):
        net.loss_and_grad(layout, np.zeros(n - 1), np.empty(n), spec, X, y)
    with pytest.raises(ValueError, match="grad_out"):
        net.loss_and_grad(layout, np.zeros(n), np.empty(n, np.float32), spec, X, y)
    ro = np.empty(n)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="grad_out"):
        net.loss_and_grad(layout, np.zeros(n), ro, spec, X, y)
    other = _model().parameters()[0]
    with pytest.raises(ValueError, match="not this network's"):
        net.loss_and_grad([(*place(other), True)], np.zeros(other.numel), np.empty(other.numel), spec, X, y)
    with pytest.raises(TypeError, match="layout"):
        net.loss_and_grad([("arena", 0, 3, True)], np.zeros(3), np.empty(3), spec, X, y)
    arena, off, numel = place(params[-1])
    with pytest.raises(ValueError, match="outside its arena"):
        net.loss_and_grad([(arena, off, numel + 10**6, False)], np.zeros(numel + 10**6),
                          np.empty(numel + 10**6), spec, X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        net.loss_and_grad(layout, np.zeros(n), np.empty(n), spec, X, y, sample_weight=np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        net.loss_and_grad(layout, np.zeros(n), np.empty(n), spec, np.full((3, 4), np.nan), y)
    assert isinstance(net.loss_and_grad(layout, np.zeros(n), np.empty(n), _core.LossKind.mse, X, y), float)
