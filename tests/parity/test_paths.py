"""The two execution paths agree.

Module by module:  model.zero_grad(); out = model._forward_modules(x); l = loss(out, y);
                   model._backward_modules(loss.backward()); opt.step()
Compiled:          net = model.compiled(); net.train_step(opt._core, loss.kind, x, y)
PyTorch-style:     the module-by-module loop with model(x) / model.backward(g), which run
                   through the compiled network one call each

Two models built with the same seeds take the same batches, one through each path. Both call the
same kernels in the same order, so float64 must agree bit for bit and float32 to 1e-6 relative.
Also: train_epoch against the module path over consecutive batches, shuffling, predict,
evaluate, the workspace capacity, the train/eval mode of the compiled network and custom Python
modules (not lowerable: compiled() is None, the module path trains them).
"""

import numpy as np
import pytest

import mlpcore as mc

ACTIVATIONS = {
    "relu": mc.ReLU, "leaky_relu": lambda: mc.LeakyReLU(0.1), "sigmoid": mc.Sigmoid, "tanh": mc.Tanh,
    "elu": lambda: mc.ELU(0.7), "gelu": mc.GELU, "silu": mc.SiLU, "softmax": mc.Softmax,
    "identity": mc.Identity,
}
LOSSES = {"cross_entropy": mc.CrossEntropyLoss, "mse": mc.MSELoss, "bce_with_logits": mc.BCEWithLogitsLoss}
OPTIMIZERS = {
    "sgd": lambda ps: mc.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda ps: mc.Adam(ps, lr=0.01, weight_decay=1e-3),
}
N_IN, N_OUT, BATCH, STEPS = 5, 3, 8, 6


def mlp(act, dtype, sizes=(N_IN, 7, 6, N_OUT), bias=True):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(mc.Linear(a, b, bias=bias, dtype=dtype, seed=10 + i))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[act]())
    return mc.Sequential(*layers)


def targets(loss_name, rng, n, dtype, n_out=N_OUT):
    if loss_name == "cross_entropy":
        return rng.integers(0, n_out, n)
    if loss_name == "mse":
        return rng.standard_normal((n, n_out)).astype(dtype)
    return rng.uniform(0, 1, (n, n_out)).astype(dtype)


def make_batches(loss_name, dtype, steps=STEPS, batch=BATCH, seed=0, n_in=N_IN, n_out=N_OUT):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, n_in)).astype(dtype), targets(loss_name, rng, batch, dtype, n_out))
            for _ in range(steps)]


def module_step(model, loss, opt, x, y):
    model.zero_grad()
    value = loss(model._forward_modules(x), y)
    model._backward_modules(loss.backward())
    opt.step()
    return value


def loop_step(model, loss, opt, x, y):
    """The PyTorch-style loop: model(x) and model.backward(g) go through the compiled network."""
    opt.zero_grad()
    value = loss(model(x), y)
    model.backward(loss.backward())
    opt.step()
    return value


def assert_same_weights(a, b, dtype):
    pa, pb = a.parameters(), b.parameters()
    assert len(pa) == len(pb)
    for p, q in zip(pa, pb):
        if dtype == np.float64:
            np.testing.assert_array_equal(p.data, q.data)
        else:
            np.testing.assert_allclose(p.data, q.data, rtol=1e-6, atol=1e-6 * np.max(np.abs(q.data)))


def run_both(make_model, loss_name, opt_name, dtype, data):
    """Train one copy module by module and one compiled; return both models and the losses."""
    a, b = make_model(), make_model()
    assert_same_weights(a, b, np.float64)  # same seeds, same init
    loss = LOSSES[loss_name]()
    oa, ob = OPTIMIZERS[opt_name](a.parameters()), OPTIMIZERS[opt_name](b.parameters())
    net = b.compiled()
    assert net is not None
    la, lb = [], []
    for x, y in data:
        la.append(module_step(a, loss, oa, x, y))
        lb.append(net.train_step(ob._core, loss.kind, x, y))
    return a, b, la, lb


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_train_step_matches_module_path(act, loss_name, opt_name, dtype):
    data = make_batches(loss_name, dtype)
    a, b, la, lb = run_both(lambda: mlp(act, dtype), loss_name, opt_name, dtype, data)
    if dtype == np.float64:
        assert la == lb
    else:
        np.testing.assert_allclose(la, lb, rtol=1e-6)
    assert_same_weights(a, b, dtype)
    # the gradients of the last step are in the shared arena too
    for p, q in zip(a.parameters(), b.parameters()):
        if dtype == np.float64:
            np.testing.assert_array_equal(p.grad, q.grad)
        else:
            np.testing.assert_allclose(p.grad, q.grad, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(a[0].weight.data, mlp(act, dtype)[0].weight.data)  # training moved them


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_train_step_matches_without_bias_and_deeper(dtype):
    data = make_batches("cross_entropy", dtype, steps=4)
    a, b, _, _ = run_both(lambda: mlp("tanh", dtype, sizes=(N_IN, 9, 9, 9, 9, N_OUT), bias=False),
                          "cross_entropy", "adam", dtype, data)
    assert_same_weights(a, b, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("act", ["relu", "gelu", "softmax"])
def test_pytorch_style_loop_through_the_network_matches_module_path(act, loss_name, dtype):
    """model(x) / model.backward(g) of a lowerable model run the network's forward and backward:
    the same numbers as module by module (bit for bit in float64), losses, weights and gradients."""
    data = make_batches(loss_name, dtype)
    a, b = mlp(act, dtype), mlp(act, dtype)
    loss = LOSSES[loss_name]()
    oa, ob = OPTIMIZERS["adam"](a.parameters()), OPTIMIZERS["adam"](b.parameters())
    la = [module_step(a, loss, oa, x, y) for x, y in data[:3]]
    lb = [loop_step(b, loss, ob, x, y) for x, y in data[:3]]
    assert b.__dict__["_path"] is not None and b.__dict__["_path"][1] is b._network()  # really the network
    for x, y in data[3:]:  # the gradient returned to the input too
        for m, fwd, bwd in ((a, a._forward_modules, a._backward_modules), (b, b, b.backward)):
            m.zero_grad()
            out = fwd(x)
            loss(out, y)
            m.gx = bwd(loss.backward())
        if dtype == np.float64:
            np.testing.assert_array_equal(a.gx, b.gx)
        else:
            np.testing.assert_allclose(a.gx, b.gx, rtol=1e-5, atol=1e-6)
    if dtype == np.float64:
        assert la == lb
    assert_same_weights(a, b, dtype)
    for p, q in zip(a.parameters(), b.parameters()):
        if dtype == np.float64:
            np.testing.assert_array_equal(p.grad, q.grad)


def test_compiled_and_module_see_the_same_weights():
    """Parameter views and the network share one arena: after compiled steps the module path
    (and .data) see the new weights at once, and writes through .data reach the network."""
    model = mlp("relu", np.float64)
    net = model.compiled()
    assert model.compiled() is net  # cached
    opt = mc.SGD(model.parameters(), lr=0.1)
    (x, y), = make_batches("cross_entropy", np.float64, steps=1)
    net.train_step(opt._core, mc.CrossEntropyLoss.kind, x, y)
    np.testing.assert_array_equal(net.predict(x), model(x))
    model[0].weight.data[...] = 0.0
    model[0].bias.data[...] = 0.0
    np.testing.assert_array_equal(net.predict(x), model(x))


# ----- train_epoch -----

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_train_epoch_without_shuffle_matches_consecutive_module_steps(loss_name, dtype):
    """50 rows in batches of 16: 16, 16, 16 and a last partial batch of 2, three epochs."""
    rng = np.random.default_rng(3)
    n, bs = 50, 16
    X = rng.standard_normal((n, N_IN)).astype(dtype)
    Y = targets(loss_name, rng, n, dtype)
    a, b = mlp("tanh", dtype), mlp("tanh", dtype)
    loss = LOSSES[loss_name]()
    oa, ob = mc.Adam(a.parameters(), lr=0.01), mc.Adam(b.parameters(), lr=0.01)
    net = b.compiled()
    for epoch in range(3):
        values = [module_step(a, loss, oa, X[s:s + bs], Y[s:s + bs]) for s in range(0, n, bs)]
        sizes = [len(X[s:s + bs]) for s in range(0, n, bs)]
        assert sizes == [16, 16, 16, 2]
        mean = sum(v * k for v, k in zip(values, sizes)) / n
        got = net.train_epoch(ob._core, loss.kind, X, Y, bs, False, 123, epoch).loss
        assert got == pytest.approx(mean, rel=1e-12 if dtype == np.float64 else 1e-6)
    assert oa.step_count == ob.step_count == 12
    assert_same_weights(a, b, dtype)


def epoch_weights(seed, shuffle=True, epochs=2, bs=10, loss_name="cross_entropy", data_seed=4):
    rng = np.random.default_rng(data_seed)
    X = rng.standard_normal((40, N_IN))
    Y = targets(loss_name, rng, 40, np.float64)
    model = mlp("relu", np.float64)
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    net = model.compiled()
    for e in range(epochs):
        net.train_epoch(opt._core, LOSSES[loss_name].kind, X, Y, bs, shuffle, seed, e)
    return [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_train_epoch_shuffle_is_seeded(loss_name):
    w1 = epoch_weights(7, loss_name=loss_name)
    w2 = epoch_weights(7, loss_name=loss_name)
    w3 = epoch_weights(8, loss_name=loss_name)
    w0 = epoch_weights(7, shuffle=False, loss_name=loss_name)
    for p, q in zip(w1, w2):
        np.testing.assert_array_equal(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(w1, w3))
    assert any(not np.array_equal(p, q) for p, q in zip(w1, w0))


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_shuffled_full_batch_equals_unshuffled(loss_name):
    """With one batch of all rows, shuffling only permutes the rows of the mean: the gathered
    inputs and targets (labels or rows) must stay paired, so weights agree up to summation order."""
    ws = epoch_weights(5, shuffle=True, bs=40, epochs=3, loss_name=loss_name)
    wn = epoch_weights(5, shuffle=False, bs=40, epochs=3, loss_name=loss_name)
    for p, q in zip(ws, wn):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)


def test_train_epoch_label_conversion_and_checks():
    model = mlp("relu", np.float32)
    net = model.compiled()
    opt = mc.SGD(model.parameters(), lr=0.1)
    X = np.zeros((6, N_IN), np.float32)
    with pytest.raises(ValueError, match="out of range"):
        net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, np.array([0, 1, 2, 3, 0, 1]), 4, False, 0)
    with pytest.raises(ValueError, match="batch_size"):
        net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, np.zeros(6, np.int64), 0, False, 0)
    with pytest.raises(ValueError, match="columns"):
        net.train_step(opt._core, mc.CrossEntropyLoss.kind, np.zeros((6, N_IN + 1), np.float32),
                       np.zeros(6, np.int64))


# ----- predict / evaluate -----

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_predict_and_evaluate_match_module_path(dtype):
    rng = np.random.default_rng(5)
    n = 37
    X = rng.standard_normal((n, N_IN)).astype(dtype)
    y = rng.integers(0, N_OUT, n)
    model = mlp("gelu", dtype)
    net = model.compiled()
    out = model(X)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for bs in (1, 5, 37, 1000):
        np.testing.assert_allclose(net.predict(X, bs), out, **tol)
    ce = mc.CrossEntropyLoss()
    value, correct = net.evaluate(ce.kind, X, y, 8)
    assert value == pytest.approx(ce(out, y), rel=1e-10 if dtype == np.float64 else 1e-5)
    assert correct == int(np.sum(out.argmax(axis=1) == y))
    Yr = rng.standard_normal((n, N_OUT)).astype(dtype)
    mse = mc.MSELoss()
    value, correct = net.evaluate(mse.kind, X, Yr, 10)
    assert value == pytest.approx(mse(out, Yr), rel=1e-10 if dtype == np.float64 else 1e-5)
    assert correct == 0


def test_evaluate_accuracy_counts_exactly():
    """A network whose logits are the input: accuracy is the count of rows whose argmax is y."""
    lin = mc.Linear(3, 3, dtype=np.float64, seed=0)
    lin.weight.data = np.eye(3)
    lin.bias.data = np.zeros(3)
    net = mc.Sequential(lin).compiled()
    X = np.array([[1.0, 0, 0], [0, 2, 0], [0, 0, 3], [5, 1, 0]])
    value, correct = net.evaluate(mc.CrossEntropyLoss.kind, X, np.array([0, 1, 0, 1]), 3)
    assert correct == 2


# ----- workspace -----

def test_workspace_capacity_grows_to_largest_batch_only():
    model = mlp("relu", np.float32)
    net = model.compiled()
    opt = mc.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)

    def step(b):
        x, y = rng.standard_normal((b, N_IN)), rng.integers(0, N_OUT, b)
        net.train_step(opt._core, mc.CrossEntropyLoss.kind, x, y)

    assert net.capacity == 0
    step(8)
    assert net.capacity == 8
    step(4)
    assert net.capacity == 8
    step(20)
    assert net.capacity == 20
    step(8)
    assert net.capacity == 20
    X, y = rng.standard_normal((50, N_IN)), rng.integers(0, N_OUT, 50)
    net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 16, True, 0)
    assert net.capacity == 20  # batches of 16 and 2 fit
    net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 32, True, 0)
    assert net.capacity == 32
    net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 500, False, 0)
    assert net.capacity == 50  # a batch never holds more than the data set
    net.predict(X, 1024)
    assert net.capacity == 50
    net.evaluate(mc.CrossEntropyLoss.kind, X[:10], y[:10], 4)
    assert net.capacity == 50


# ----- train / eval mode of the compiled network -----

def test_compiled_network_follows_model_train_eval():
    model = mc.Sequential(mc.Linear(4, 64, dtype=np.float64, seed=0), mc.Dropout(0.5, seed=1),
                          mc.Linear(64, 2, dtype=np.float64, seed=2))
    net = model.compiled()
    x = np.random.default_rng(0).standard_normal((16, 4))
    assert net.training
    model.eval()
    assert not net.training
    np.testing.assert_array_equal(net.forward(x), model(x))  # eval: dropout is the identity
    np.testing.assert_array_equal(net.forward(x), net.predict(x))
    model.train()
    assert net.training
    fresh = mc.Sequential(mc.Linear(4, 2, dtype=np.float64, seed=0), mc.Dropout(0.5, seed=1)).eval()
    assert not fresh.compiled().training  # a network built while in eval mode starts in eval mode


# ----- custom Python modules -----

class Square(mc.Module):
    """y = x**2 in numpy (a custom, non-lowerable module)."""

    _passthrough = True

    def forward(self, x):
        self.x = np.asarray(x, dtype=np.float64)
        return self.x ** 2

    def backward(self, grad_output):
        return 2.0 * self.x * grad_output


def test_custom_module_is_not_compiled_but_trains_module_by_module():
    torch = pytest.importorskip("torch")
    model = mc.Sequential(mc.Linear(4, 6, dtype=np.float64, seed=0), Square(),
                          mc.Linear(6, 3, dtype=np.float64, seed=1))
    assert model.compiled() is None
    t1, t2 = torch.nn.Linear(4, 6, dtype=torch.float64), torch.nn.Linear(6, 3, dtype=torch.float64)
    with torch.no_grad():
        for t, m in ((t1, model[0]), (t2, model[2])):
            t.weight.copy_(torch.from_numpy(m.weight.data.copy()))
            t.bias.copy_(torch.from_numpy(m.bias.data.copy()))
    tparams = list(t1.parameters()) + list(t2.parameters())
    loss = mc.CrossEntropyLoss()
    opt = mc.SGD(model.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD(tparams, lr=0.05, momentum=0.9)
    data = make_batches("cross_entropy", np.float64, steps=15, batch=16, n_in=4, n_out=3)
    values = []
    for x, y in data:
        values.append(module_step(model, loss, opt, x, y))
        topt.zero_grad()
        tl = torch.nn.functional.cross_entropy(t2(t1(torch.from_numpy(x)) ** 2), torch.from_numpy(y))
        tl.backward()
        topt.step()
        assert values[-1] == pytest.approx(tl.item(), rel=1e-10)
    for p, t in zip(model.parameters(), tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-9, atol=1e-12)
    # the model really trained on the same data
    assert np.mean([module_step(model, loss, opt, x, y) for x, y in data[:4]]) < np.mean(values[:4])


def test_custom_module_inside_residual_is_not_compiled():
    model = mc.Sequential(mc.Linear(4, 4, seed=0), mc.Residual(Square()), mc.Linear(4, 2, seed=1))
    assert model.compiled() is None
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    h = model[0](x)
    np.testing.assert_allclose(model(x), model[2](h + h.astype(np.float64) ** 2), rtol=1e-6)


def test_wrapping_a_compiled_sequential_keeps_its_network():
    """A Sequential whose network was handed out (compiled()) is pinned: a Sequential wrapping it
    leaves its parameters where they are, so the network handed out stays live, and the outer
    network spans both arenas."""
    inner = mc.Sequential(mc.Linear(4, 5, dtype=np.float64, seed=0), mc.ReLU(),
                          mc.Linear(5, 4, dtype=np.float64, seed=1))
    kept = inner.compiled()
    outer = mc.Sequential(inner, mc.Linear(4, 2, dtype=np.float64, seed=2))
    assert inner.compiled() is kept
    inner[0].weight.data[...] *= 2.0  # a change made through the parameter views
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(kept.predict(x), inner._forward_modules(x))
    assert len({id(p._arena) for p in outer.parameters()}) == 2
    np.testing.assert_array_equal(outer.compiled().predict(x), outer._forward_modules(x))


def test_wrapping_gathers_free_parameters_and_rebuilds_the_inner_network():
    """Without outside pointers, wrapping gathers every parameter into one new arena; the inner
    Sequential's own network (used by inner(x)) follows the move: its version changed."""
    inner = mc.Sequential(mc.Linear(4, 5, dtype=np.float64, seed=0), mc.ReLU(),
                          mc.Linear(5, 4, dtype=np.float64, seed=1))
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = inner(x)
    old = inner._network()
    outer = mc.Sequential(inner, mc.Linear(4, 2, dtype=np.float64, seed=2))
    assert len({id(p._arena) for p in outer.parameters()}) == 1
    assert inner._network() is not old
    inner[0].weight.data[...] *= 2.0
    np.testing.assert_array_equal(inner(x), inner._forward_modules(x))
    assert not np.array_equal(inner(x), before)
    np.testing.assert_array_equal(outer(x), outer._forward_modules(x))
