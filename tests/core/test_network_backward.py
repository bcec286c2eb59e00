"""The module path through the compiled network: Network.forward keeps what backward needs,
Network.backward(grad_output) adds to the parameter gradients and returns d loss / d x — the
numbers of the module-by-module path (model._forward_modules / _backward_modules) — with the dropout masks
of that forward; any other use of the network in between makes backward raise, naming it."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import _core

CE = _core.LossKind.cross_entropy


def _models(dtype):
    yield "mlp", lambda: mc.Sequential(mc.Linear(5, 8, seed=1, dtype=dtype), mc.GELU(),
                                       mc.Linear(8, 3, seed=2, dtype=dtype))
    yield "dropout", lambda: mc.Sequential(mc.Linear(5, 8, seed=1, dtype=dtype), mc.ReLU(), mc.Dropout(0.4),
                                           mc.Linear(8, 3, seed=2, dtype=dtype), mc.Tanh())
    yield "residual", lambda: mc.Sequential(
        mc.Linear(5, 8, seed=1, dtype=dtype), mc.Residual(mc.Sequential(mc.Linear(8, 8, seed=3, dtype=dtype),
                                                                         mc.SiLU())),
        mc.Linear(8, 3, seed=2, dtype=dtype))
    yield "maxout", lambda: mc.Sequential(mc.Maxout(5, 4, 3, dtype=dtype), mc.Linear(4, 3, seed=2, dtype=dtype),
                                          mc.Softmax())


def _dropouts(model):
    out = []
    stack = [model]
    while stack:
        m = stack.pop()
        if isinstance(m, mc.Dropout):
            out.append(m)
        stack.extend(list(getattr(m, "layers", ())) + ([m.block] if hasattr(m, "block") else []))
    return out


CASES = [(name, make, dtype) for dtype in (np.float32, np.float64) for name, make in _models(dtype)]


@pytest.mark.parametrize("name, make, dtype", CASES, ids=[f"{c[0]}-{c[2].__name__}" for c in CASES])
def test_forward_backward_match_the_module_path(name, make, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5)).astype(dtype)
    g = rng.standard_normal((7, 3)).astype(dtype)
    model = make()
    model.train()
    counters = [d._state.counter for d in _dropouts(model)]
    model.zero_grad()
    want_y = model._forward_modules(x)
    want_dx = model._backward_modules(g)
    want_grads = [p.grad.copy() for p in model.parameters()]

    net = model.compiled()
    assert net is not None and net.training
    for d, c in zip(_dropouts(model), counters):
        d._state.counter = c  # the same masks as the module path drew
    model.zero_grad()
    y = net.forward(x)
    dx = net.backward(g)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol)
    assert dx.shape == x.shape and dx.dtype == dtype
    for p, w in zip(model.parameters(), want_grads):
        np.testing.assert_allclose(p.grad, w, rtol=tol, atol=tol)
    # every gradient write accumulates (PyTorch semantics): a second backward adds the same again
    np.testing.assert_array_equal(net.backward(g), dx)
    for p, w in zip(model.parameters(), want_grads):
        np.testing.assert_allclose(p.grad, 2 * w, rtol=tol, atol=tol)


def test_eval_mode_forward_has_no_dropout_and_backward_follows_it():
    model = mc.Sequential(mc.Linear(4, 16, seed=1), mc.Dropout(0.5), mc.Linear(16, 2, seed=2))
    net = model.compiled()
    x = np.ones((3, 4), np.float32)
    model.eval()
    assert not net.training
    a = net.forward(x)
    np.testing.assert_array_equal(net.forward(x), a)  # no masks
    model.zero_grad()
    net.backward(np.ones((3, 2), np.float32))
    np.testing.assert_allclose(model[0].bias.grad, 3 * model[2].weight.data.sum(axis=0), rtol=1e-5)


def test_backward_refuses_when_the_workspace_was_reused():
    model = mc.Sequential(mc.Linear(4, 5, seed=1), mc.ReLU(), mc.Linear(5, 3, seed=2))
    net = model.compiled()
    opt = mc.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(1)
    x, y, g = rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 3, 6), np.ones((6, 3), np.float32)
    with pytest.raises(RuntimeError, match="no forward"):
        net.backward(g)
    others = {
        "predict": lambda: net.predict(x),
        "evaluate": lambda: net.evaluate(CE, x, y),
        "train_step": lambda: net.train_step(opt._core, CE, x, y),
        "train_epoch": lambda: net.train_epoch(opt._core, CE, x, y, 2, True, 0),
    }
    for name, call in others.items():
        net.forward(x)
        call()
        with pytest.raises(RuntimeError, match=name):
            net.backward(g)
    # another forward: backward follows the latest one (here of 2 rows)
    net.forward(x)
    net.forward(x[:2])
    assert net.backward(g[:2]).shape == (2, 4)
    with pytest.raises(ValueError, match="rows"):
        net.backward(g)
    with pytest.raises(ValueError, match="columns"):
        net.backward(g[:2, :2])


def test_forward_keeps_its_own_input():
    """Backward reads the forward's (converted) input, which the binding keeps alive: the caller
    may drop or overwrite its array in between."""
    model = mc.Sequential(mc.Linear(4, 5, seed=1), mc.Tanh(), mc.Linear(5, 2, seed=2))
    net = model.compiled()
    x = np.random.default_rng(2).standard_normal((5, 4))  # float64: converted to float32 copy
    x32 = x.astype(np.float32)
    model.zero_grad()
    net.forward(x32.copy())
    want = net.backward(np.ones((5, 2), np.float32))
    wgrad = model[0].weight.grad.copy()
    model.zero_grad()
    net.forward(x)
    x[...] = 1e6  # the converted copy is what backward reads
    np.testing.assert_array_equal(net.backward(np.ones((5, 2), np.float32)), want)
    np.testing.assert_array_equal(model[0].weight.grad, wgrad)
    model.zero_grad()
    xs = x32.copy()
    net.forward(xs)
    del xs  # the binding holds the array
    np.testing.assert_array_equal(net.backward(np.ones((5, 2), np.float32)), want)
