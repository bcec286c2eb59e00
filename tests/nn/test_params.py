"""Parameters and ownership: ``p.data`` / ``p.grad`` are zero-copy numpy views of the C++ arena
on the CPU; ``p.data = a`` copies in after a shape check; arrays handed back by forward and
backward belong to the caller; a view keeps its arena alive."""

import gc

import numpy as np
import pytest

import mlpcore as mc


def _mlp(dtype=np.float64):
    return mc.Sequential(mc.Linear(4, 6, dtype=dtype, seed=0), mc.Tanh(),
                         mc.Linear(6, 3, dtype=dtype, seed=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_data_and_grad_are_views_of_the_arena(dtype):
    model = _mlp(dtype)
    for name, p in model.named_parameters():
        d1, d2, g1, g2 = p.data, p.data, p.grad, p.grad
        assert np.shares_memory(d1, d2) and np.shares_memory(g1, g2), name
        assert not np.shares_memory(d1, g1), name
        assert d1.dtype == np.dtype(dtype) and g1.dtype == np.dtype(dtype)
        assert d1.shape == p.shape and g1.shape == p.shape
        assert not d1.flags.owndata and d1.flags.writeable and d1.flags.c_contiguous
    # distinct parameters never overlap
    views = [p.data for p in model.parameters()]
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            assert not np.shares_memory(views[i], views[j])


def test_writing_data_changes_the_output():
    rng = np.random.default_rng(0)
    model = _mlp()
    x = rng.standard_normal((5, 4))
    y0 = model(x)
    w = model[0].weight.data  # a view taken once, written later
    w[...] = rng.standard_normal(w.shape)
    model[2].bias.data[...] = 1.0
    y1 = model(x)
    assert not np.allclose(y0, y1)
    w0, b0, w2 = model[0].weight.data, model[0].bias.data, model[2].weight.data
    np.testing.assert_allclose(y1, np.tanh(x @ w0.T + b0) @ w2.T + 1.0, rtol=1e-13)


def test_linear_output_follows_written_weights():
    lin = mc.Linear(3, 2, dtype=np.float64, seed=0)
    lin.weight.data[...] = 0.0
    lin.bias.data[...] = [1.0, -2.0]
    np.testing.assert_array_equal(lin(np.ones((4, 3))), np.tile([1.0, -2.0], (4, 1)))


def test_assigning_data_copies_with_a_shape_check():
    lin = mc.Linear(3, 2, dtype=np.float64, seed=0)
    view = lin.weight.data
    a = np.arange(6.0).reshape(2, 3)
    lin.weight.data = a
    np.testing.assert_array_equal(view, a)  # written into the arena, seen by older views
    a[...] = -1.0
    np.testing.assert_array_equal(lin.weight.data, np.arange(6.0).reshape(2, 3))  # a copy, not a reference
    lin.weight.data = np.arange(6, dtype=np.int32).reshape(2, 3)  # converted to the parameter's dtype
    assert lin.weight.data.dtype == np.float64
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\), got \(3, 2\)"):
        lin.weight.data = np.zeros((3, 2))
    with pytest.raises(ValueError, match="shape"):
        lin.bias.data = np.zeros((2, 1))
    with pytest.raises(TypeError, match="dtype"):
        lin.weight.data = np.zeros((2, 3), dtype=object)
    with pytest.raises(ValueError, match="NaN"):
        lin.weight.data = np.full((2, 3), np.nan)
    # refused writes changed nothing
    np.testing.assert_array_equal(lin.weight.data, np.arange(6.0).reshape(2, 3))


def test_assigning_grad_copies_with_a_shape_check():
    lin = mc.Linear(3, 2, dtype=np.float64, seed=0)
    g = lin.weight.grad
    lin.weight.grad = np.ones((2, 3))
    np.testing.assert_array_equal(g, 1.0)
    with pytest.raises(ValueError, match=r"Parameter.grad: expected shape \(2, 3\)"):
        lin.weight.grad = np.ones(6)


def test_optimizer_step_updates_the_viewed_memory():
    rng = np.random.default_rng(1)
    model = _mlp()
    w = model[0].weight.data
    before = w.copy()
    opt = mc.SGD(model.parameters(), lr=0.1)
    model.zero_grad()
    model.backward(rng.standard_normal(model(rng.standard_normal((5, 4))).shape))
    g = model[0].weight.grad.copy()
    opt.step()
    np.testing.assert_allclose(w, before - 0.1 * g, rtol=1e-14)


def test_zero_grad_and_accumulation_through_views():
    rng = np.random.default_rng(2)
    model = _mlp()
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    grads = [p.grad for p in model.parameters()]
    model.zero_grad()
    model(x)
    model.backward(g)
    once = [v.copy() for v in grads]
    model(x)
    model.backward(g)
    for v, o in zip(grads, once):
        np.testing.assert_allclose(v, 2 * o, rtol=1e-14)
    model.zero_grad()
    for v in grads:
        np.testing.assert_array_equal(v, 0.0)


def test_views_keep_the_arena_alive():
    model = _mlp()
    w, g = model[0].weight.data, model[2].bias.grad
    expected = w.copy()
    del model
    gc.collect()
    np.testing.assert_array_equal(w, expected)
    w[...] = 3.0  # still valid, writable memory
    g[...] = 4.0
    assert w.sum() == 3.0 * w.size and g.sum() == 4.0 * g.size


def test_views_taken_after_building_the_sequential_are_live():
    """Views taken after a Sequential is built are live (as are views taken before it: see
    test_ownership.py)."""
    l0 = mc.Linear(4, 3, dtype=np.float64, seed=0)
    model = mc.Sequential(l0, mc.ReLU())
    l0.weight.data[...] = 0.0
    l0.bias.data[...] = 2.0
    np.testing.assert_array_equal(model(np.ones((2, 4))), 2.0)


# ----- arrays handed back belong to the caller -------------------------------------------------------

MODULES = {
    "Linear": lambda: mc.Linear(4, 4, dtype=np.float64, seed=0),
    "Linear-nobias": lambda: mc.Linear(4, 4, bias=False, dtype=np.float64, seed=0),
    "Identity": mc.Identity, "ReLU": mc.ReLU, "LeakyReLU": lambda: mc.LeakyReLU(0.1), "Sigmoid": mc.Sigmoid,
    "Tanh": mc.Tanh, "ELU": mc.ELU, "GELU": mc.GELU, "SiLU": mc.SiLU, "Softmax": mc.Softmax,
    "Linear-Sigmoid": lambda: mc.Sequential(mc.Linear(4, 4, dtype=np.float64, seed=0), mc.Sigmoid()),
    "MLP": lambda: mc.Sequential(mc.Linear(4, 5, dtype=np.float64, seed=0), mc.ReLU(),
                                 mc.Linear(5, 4, dtype=np.float64, seed=1)),
}


@pytest.mark.parametrize("make", MODULES.values(), ids=list(MODULES))
def test_returned_arrays_are_not_overwritten_by_later_calls(make):
    rng = np.random.default_rng(3)
    m = make()
    x1, x2 = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    g1, g2 = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    y1 = m(x1)
    gx1 = m.backward(g1)
    keep_y1, keep_gx1 = y1.copy(), gx1.copy()
    y2 = m(x2)
    gx2 = m.backward(g2)
    assert not np.shares_memory(y1, y2) and not np.shares_memory(gx1, gx2)
    np.testing.assert_array_equal(y1, keep_y1)
    np.testing.assert_array_equal(gx1, keep_gx1)


@pytest.mark.parametrize("make", MODULES.values(), ids=list(MODULES))
def test_caller_may_modify_the_output_in_place(make):
    """`out -= target` on the returned output must not change what backward computes."""
    rng = np.random.default_rng(4)
    m = make()
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    m.zero_grad()
    m(x)
    want = m.backward(g)
    want_grads = [p.grad.copy() for p in m.parameters()]
    m.zero_grad()
    y = m(x)
    y[...] = 123.0
    np.testing.assert_array_equal(m.backward(g), want)
    for p, wg in zip(m.parameters(), want_grads):
        np.testing.assert_array_equal(p.grad, wg)


def test_loss_backward_returns_a_fresh_array():
    loss = mc.MSELoss()
    p, t = np.ones((3, 2)), np.zeros((3, 2))
    loss(p, t)
    a = loss.backward()
    a[...] = 0.0
    b = loss.backward()
    np.testing.assert_allclose(b, 2.0 / 6.0)
    loss(2 * p, t)
    np.testing.assert_allclose(b, 2.0 / 6.0)  # not overwritten by the next loss call


def test_forward_does_not_modify_its_input():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 4))
    keep = x.copy()
    for make in MODULES.values():
        m = make()
        m(x)
        m.backward(rng.standard_normal((5, 4)))
        np.testing.assert_array_equal(x, keep)
