"""The structural layers in both execution paths: Dropout, Maxout, Residual and TiedLinear.

Each layer is checked against a PyTorch twin written with plain tensor ops (forward, loss,
every parameter gradient and d loss / d x), through the module path *and* through the
compiled network (whose backward writes the same gradient arena), against float64 central
differences (mc.gradcheck), and the two paths are trained side by side: float64 bit for bit.
"""

import numpy as np
import pytest

import mlpcore as mc

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


F = torch.nn.functional
F64 = np.float64


def t(a, grad=False):
    return torch.tensor(np.array(a, copy=True), requires_grad=grad)


def check_vs_torch(model, tfn, x, target, loss, rtol=1e-10, atol=1e-12):
    """model: a float64 mc.Sequential; tfn(x, *params) -> output, params in the order of
    model.parameters(). Compares the module path, model(x) / model.backward (through the network
    when the model lowers) and the compiled train_step with torch autograd."""
    params = model.parameters()
    tparams = [t(p.data, grad=True) for p in params]
    tx = t(x, grad=True)
    tout = tfn(tx, *tparams)
    if isinstance(loss, mc.CrossEntropyLoss):
        tl = F.cross_entropy(tout, torch.from_numpy(target))
    else:
        tl = F.mse_loss(tout, torch.from_numpy(target))
    tl.backward()

    # module by module, then model(x) / model.backward
    for forward, backward in ((model._forward_modules, model._backward_modules), (model, model.backward)):
        model.zero_grad()
        out = forward(x)
        np.testing.assert_allclose(out, tout.detach().numpy(), rtol=rtol, atol=atol)
        assert loss(out, target) == pytest.approx(tl.item(), rel=rtol)
        gx = backward(loss.backward())
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=rtol, atol=atol)
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=rtol, atol=atol)

    # compiled: train_step overwrites the gradient arena with this batch's gradients
    net = model.compiled()
    assert net is not None
    before = [p.data.copy() for p in params]
    for p in params:
        p.grad[...] = 123.0  # the compiled backward overwrites (first use) rather than accumulates
    value = net.train_step(mc.SGD(params, lr=1e-3)._core, loss.kind, x, target)
    assert value == pytest.approx(tl.item(), rel=rtol)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=rtol, atol=atol)
    for p, w in zip(params, before):
        p.data = w
    return tparams


def train_both(make_model, data, loss, make_opt=lambda ps: mc.Adam(ps, lr=0.01)):
    """One copy module by module, one compiled, same batches; returns both models."""
    a, b = make_model(), make_model()
    oa, ob = make_opt(a.parameters()), make_opt(b.parameters())
    net = b.compiled()
    assert net is not None
    for x, y in data:
        a.zero_grad()
        la = loss(a._forward_modules(x), y)
        a._backward_modules(loss.backward())
        oa.step()
        lb = net.train_step(ob._core, loss.kind, x, y)
        assert la == lb
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    return a, b


def batches(n_in, n_out, steps=6, batch=8, seed=0, labels=True):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.standard_normal((batch, n_in))
        y = rng.integers(0, n_out, batch) if labels else rng.standard_normal((batch, n_out))
        out.append((x, y))
    return out


def assert_gradcheck(model, x, tol=1e-6):
    report = mc.gradcheck(model, x)
    assert set(report) == {"input"} | {n for n, _ in model.named_parameters()}
    assert max(report.values()) < tol, report


# =============================== Dropout ===============================

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_is_inverted_with_mask_rate_p(p, dtype):
    d = mc.Dropout(p, seed=1)
    x = np.ones((200, 500), dtype)
    y = d(x)
    assert y.dtype == dtype and y.shape == x.shape
    dropped = np.mean(y == 0)
    sigma = np.sqrt(p * (1 - p) / x.size)
    assert abs(dropped - p) < 5 * sigma
    kept = y[y != 0]
    np.testing.assert_allclose(kept, dtype(1.0 / (1.0 - p)), rtol=0)  # inverted scaling, exact
    assert abs(np.mean(y) - 1.0) < 5 * sigma / (1 - p)  # expectation preserved
    g = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    gx = d.backward(g)
    np.testing.assert_array_equal(gx, g * y)  # dx = dy * mask; the mask is y here (x = 1)


def test_dropout_masks_are_seeded_and_advance():
    x = np.ones((4, 64))
    a, b, c = mc.Dropout(0.5, seed=3), mc.Dropout(0.5, seed=3), mc.Dropout(0.5, seed=4)
    ya1, yb1, yc1 = a(x), b(x), c(x)
    np.testing.assert_array_equal(ya1, yb1)
    assert not np.array_equal(ya1, yc1)
    ya2 = a(x)
    assert not np.array_equal(ya1, ya2)  # each call draws a fresh mask
    # the counter-based stream: one call on 8 rows = two calls on 4 rows
    d = mc.Dropout(0.5, seed=3)
    np.testing.assert_array_equal(d(np.ones((8, 64))), np.vstack([ya1, ya2]))


def test_dropout_eval_and_p_zero_are_identity():
    x = np.random.default_rng(0).standard_normal((5, 7))
    d = mc.Dropout(0.5, seed=0)
    d.eval()
    y = d(x)
    np.testing.assert_array_equal(y, x)
    assert y is not x and not np.shares_memory(y, x)  # arrays handed back belong to the caller
    g = np.arange(35.0).reshape(5, 7)
    np.testing.assert_array_equal(d.backward(g), g)
    counter = d._state.counter
    d.train()
    d(x)
    assert d._state.counter == counter + x.size  # eval calls did not draw
    z = mc.Dropout(0.0, seed=0)
    np.testing.assert_array_equal(z(x), x)
    np.testing.assert_array_equal(z.backward(g), g)


def test_dropout_argument_errors():
    for bad in (-0.1, 1.0, 1.5, "0.5", None):
        with pytest.raises(ValueError, match="p"):
            mc.Dropout(bad)
    with pytest.raises(RuntimeError, match="before forward"):
        mc.Dropout(0.5).backward(np.ones((2, 2)))


def dropout_mlp(seed=7, p=0.4):
    return mc.Sequential(mc.Linear(5, 16, dtype=F64, seed=0), mc.ReLU(), mc.Dropout(p, seed=seed),
                         mc.Linear(16, 16, dtype=F64, seed=1), mc.Tanh(), mc.Dropout(p / 2, seed=seed + 1),
                         mc.Linear(16, 3, dtype=F64, seed=2))


def test_dropout_both_paths_draw_the_same_masks():
    data = batches(5, 3, steps=8)
    a, b = train_both(dropout_mlp, data, mc.CrossEntropyLoss())
    assert a[2]._state.counter == b[2]._state.counter == 8 * 8 * 16
    # dropout really acted: without it the weights end elsewhere
    c, _ = train_both(lambda: dropout_mlp(p=0.0), data, mc.CrossEntropyLoss())
    assert not np.array_equal(a[0].weight.data, c[0].weight.data)
    # a different seed gives different masks, hence different weights
    e, _ = train_both(lambda: dropout_mlp(seed=99), data, mc.CrossEntropyLoss())
    assert not np.array_equal(a[0].weight.data, e[0].weight.data)


def test_input_dropout_and_dropout_in_a_residual_both_paths():
    def make():
        return mc.Sequential(mc.Dropout(0.2, seed=1), mc.Linear(5, 6, dtype=F64, seed=0), mc.ReLU(),
                             mc.Residual(mc.Sequential(mc.Dropout(0.3, seed=2),
                                                       mc.Linear(6, 6, dtype=F64, seed=1))),
                             mc.Linear(6, 3, dtype=F64, seed=2))

    a, _ = train_both(make, batches(5, 3), mc.CrossEntropyLoss())
    assert a[0]._state.counter == 6 * 8 * 5


def test_dropout_train_epoch_matches_module_path_and_predict_is_deterministic():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 5)), rng.integers(0, 3, 30)
    a, b = dropout_mlp(), dropout_mlp()
    loss = mc.CrossEntropyLoss()
    oa, ob = mc.SGD(a.parameters(), lr=0.1, momentum=0.9), mc.SGD(b.parameters(), lr=0.1, momentum=0.9)
    for s in range(0, 30, 8):
        a.zero_grad()
        loss(a._forward_modules(X[s:s + 8]), y[s:s + 8])
        a._backward_modules(loss.backward())
        oa.step()
    net = b.compiled()
    net.train_epoch(ob._core, loss.kind, X, y, 8, False, 0)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    counter = b[2]._state.counter
    p1, p2 = net.predict(X), net.predict(X)
    np.testing.assert_array_equal(p1, p2)  # inference: dropout off, no draws
    assert b[2]._state.counter == counter
    b.eval()
    np.testing.assert_allclose(b(X), p1, rtol=1e-12, atol=1e-14)


def test_dropout_gradient_vs_torch_with_the_same_mask():
    """Forward/backward of a train-mode dropout network against torch using mlpcore's mask."""
    model = dropout_mlp()
    x, y = batches(5, 3, steps=1)[0]
    probe = mc.Dropout(0.4, seed=7)  # draws the same first mask as model[2]
    h_shape = (x.shape[0], 16)
    m1 = probe(np.ones(h_shape))
    probe2 = mc.Dropout(0.2, seed=8)
    m2 = probe2(np.ones(h_shape))

    def tfn(tx, w1, b1, w2, b2, w3, b3):
        h = F.relu(tx @ w1.T + b1) * torch.from_numpy(m1)
        h = torch.tanh(h @ w2.T + b2) * torch.from_numpy(m2)
        return h @ w3.T + b3

    params = model.parameters()
    tparams = [t(p.data, grad=True) for p in params]
    tl = F.cross_entropy(tfn(t(x), *tparams), torch.from_numpy(y))
    tl.backward()
    loss = mc.CrossEntropyLoss()
    model.zero_grad()
    assert loss(model(x), y) == pytest.approx(tl.item(), rel=1e-12)
    model.backward(loss.backward())
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12)
    # the compiled path on a fresh twin draws the same masks: same loss, same gradients
    twin = dropout_mlp()
    value = twin.compiled().train_step(mc.SGD(twin.parameters(), lr=1e-3)._core, loss.kind, x, y)
    assert value == pytest.approx(tl.item(), rel=1e-12)
    for p, tp in zip(twin.parameters(), tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12)


# =============================== Maxout ===============================

def torch_maxout(tx, w, b, units, pieces):
    z = tx @ w.T + b
    return z.view(tx.shape[0], units, pieces).max(-1).values


@pytest.mark.parametrize("pieces", [1, 2, 4])
def test_maxout_vs_torch(pieces):
    model = mc.Sequential(mc.Maxout(5, 3, pieces=pieces, dtype=F64, seed=1))
    assert model[0].weight.shape == (3 * pieces, 5) and model[0].bias.shape == (3 * pieces,)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    model[0].bias.data = np.random.default_rng(2).standard_normal(3 * pieces)
    x, y = batches(5, 3, steps=1, batch=10, labels=False)[0]
    check_vs_torch(model, lambda tx, w, b: torch_maxout(tx, w, b, 3, pieces), x, y, mc.MSELoss())


def test_maxout_routes_gradient_to_the_winning_piece():
    m = mc.Maxout(4, 3, pieces=5, dtype=F64, seed=0)
    x = np.random.default_rng(1).standard_normal((1, 4))
    z = x @ m.weight.data.T + m.bias.data
    win = z.reshape(3, 5).argmax(axis=1)
    y = m(x)
    np.testing.assert_allclose(y[0], z.reshape(3, 5).max(axis=1), rtol=1e-14)
    m.linear.weight.grad[...] = 0
    m.linear.bias.grad[...] = 0
    g = np.array([[1.0, -2.0, 3.0]])
    gx = m.backward(g)
    db = m.bias.grad.reshape(3, 5)
    expected = np.zeros((3, 5))
    expected[np.arange(3), win] = g[0]
    np.testing.assert_array_equal(db, expected)  # only the winners receive gradient
    dW = m.weight.grad.reshape(3, 5, 4)
    assert np.count_nonzero(np.abs(dW).sum(axis=2)) == 3
    winners = m.weight.data.reshape(3, 5, 4)[np.arange(3), win]  # (units, in): the winning rows
    np.testing.assert_allclose(gx[0], (g[0][:, None] * winners).sum(0))


def maxout_mlp():
    return mc.Sequential(mc.Linear(5, 8, dtype=F64, seed=0), mc.ReLU(),
                         mc.Maxout(8, 4, pieces=3, dtype=F64, seed=1),
                         mc.Maxout(4, 4, pieces=2, dtype=F64, seed=2), mc.Linear(4, 3, dtype=F64, seed=3))


def test_maxout_in_a_network_vs_torch_and_both_paths():
    model = maxout_mlp()
    x, y = batches(5, 3, steps=1, batch=12)[0]

    def tfn(tx, w0, b0, w1, b1, w2, b2, w3, b3):
        h = F.relu(tx @ w0.T + b0)
        h = torch_maxout(h, w1, b1, 4, 3)
        h = torch_maxout(h, w2, b2, 4, 2)
        return h @ w3.T + b3

    check_vs_torch(model, tfn, x, y, mc.CrossEntropyLoss())
    train_both(maxout_mlp, batches(5, 3), mc.CrossEntropyLoss())
    assert_gradcheck(maxout_mlp(), x[:4])


def test_maxout_argument_errors():
    with pytest.raises(ValueError, match="pieces"):
        mc.Maxout(4, 3, pieces=0)
    with pytest.raises(ValueError, match="out_features"):
        mc.Maxout(4, 0, pieces=2)
    with pytest.raises(ValueError, match="expects 4 input features"):
        mc.Sequential(mc.Linear(3, 5), mc.Maxout(4, 2))


# =============================== Residual ===============================

def test_residual_single_linear_vs_torch_and_fd():
    model = mc.Sequential(mc.Residual(mc.Linear(6, 6, dtype=F64, seed=0)))
    x, y = batches(6, 6, steps=1, labels=False)[0]
    check_vs_torch(model, lambda tx, w, b: tx + tx @ w.T + b, x, y, mc.MSELoss())
    assert_gradcheck(model, x)


def residual_block(seed=0, width=6, hidden=8):
    return mc.Residual(mc.Sequential(mc.Linear(width, hidden, dtype=F64, seed=seed), mc.ReLU(),
                                     mc.Linear(hidden, width, dtype=F64, seed=seed + 1)))


def torch_block(h, w1, b1, w2, b2):
    return h + F.relu(h @ w1.T + b1) @ w2.T + b2


def test_residual_mlp_block_vs_torch_and_fd():
    model = mc.Sequential(residual_block())
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.block.0.weight", "0.block.0.bias", "0.block.2.weight", "0.block.2.bias"]
    x, y = batches(6, 6, steps=1, labels=False)[0]
    check_vs_torch(model, torch_block, x, y, mc.MSELoss())
    assert_gradcheck(model, x)


def residual_net():
    return mc.Sequential(mc.Linear(4, 6, dtype=F64, seed=10), mc.ReLU(), residual_block(0), mc.Tanh(),
                         residual_block(2), mc.Linear(6, 3, dtype=F64, seed=11))


def test_residual_nested_in_a_sequential_vs_torch_and_both_paths():
    """The skip values are a fused Linear+ReLU output and a residual output; two blocks in a row."""
    model = residual_net()
    x, y = batches(4, 3, steps=1, batch=10)[0]

    def tfn(tx, w0, b0, *rest):
        h = F.relu(tx @ w0.T + b0)
        h = torch.tanh(torch_block(h, *rest[0:4]))
        h = torch_block(h, *rest[4:8])
        return h @ rest[8].T + rest[9]

    check_vs_torch(model, tfn, x, y, mc.CrossEntropyLoss())
    train_both(residual_net, batches(4, 3), mc.CrossEntropyLoss())
    train_both(residual_net, batches(4, 3), mc.CrossEntropyLoss(),
               make_opt=lambda ps: mc.SGD(ps, lr=0.05, momentum=0.9))


def test_residual_skip_that_would_otherwise_be_fused():
    """Linear -> Residual(ReLU -> Linear): the Linear's output is both the skip and the ReLU's
    input, so the compiled network must not fuse that Linear with the ReLU."""
    def make():
        return mc.Sequential(mc.Linear(4, 6, dtype=F64, seed=0),
                             mc.Residual(mc.Sequential(mc.ReLU(), mc.Linear(6, 6, dtype=F64, seed=1))),
                             mc.Linear(6, 3, dtype=F64, seed=2))

    x, y = batches(4, 3, steps=1)[0]

    def tfn(tx, w0, b0, w1, b1, w2, b2):
        h = tx @ w0.T + b0
        h = h + F.relu(h) @ w1.T + b1
        return h @ w2.T + b2

    check_vs_torch(make(), tfn, x, y, mc.CrossEntropyLoss())
    train_both(make, batches(4, 3), mc.CrossEntropyLoss())


def test_residual_first_and_nested_residuals():
    """A residual on the network input (the skip is value 0) containing another residual."""
    def make():
        inner = mc.Residual(mc.Linear(4, 4, dtype=F64, seed=1))
        return mc.Sequential(mc.Residual(mc.Sequential(mc.Linear(4, 4, dtype=F64, seed=0), mc.Tanh(), inner)),
                             mc.Linear(4, 2, dtype=F64, seed=2))

    x, y = batches(4, 2, steps=1, labels=False)[0]

    def tfn(tx, w0, b0, w1, b1, w2, b2):
        h = torch.tanh(tx @ w0.T + b0)
        h = h + h @ w1.T + b1
        return (tx + h) @ w2.T + b2

    check_vs_torch(make(), tfn, x, y, mc.MSELoss())
    train_both(make, batches(4, 2, labels=False), mc.MSELoss())
    assert_gradcheck(make(), x)


def test_residual_width_mismatch_is_refused():
    with pytest.raises(ValueError, match="equal widths"):
        mc.Residual(mc.Linear(4, 5))
    with pytest.raises(TypeError, match="block"):
        mc.Residual(lambda x: x)


# =============================== TiedLinear ===============================

def tied_autoencoder(seed=0):
    enc = mc.Linear(8, 3, dtype=F64, seed=seed)
    dec = mc.TiedLinear(enc, transpose=True)
    return mc.Sequential(enc, mc.Tanh(), dec)


def test_tied_autoencoder_vs_torch_using_one_tensor_twice():
    model = tied_autoencoder()
    enc, dec = model[0], model[2]
    assert dec.weight is enc.weight and dec.in_features == 3 and dec.out_features == 8
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    dec.bias.data = np.linspace(-1, 1, 8)
    x = np.random.default_rng(0).standard_normal((10, 8))

    def tfn(tx, w, b1, b2):
        return torch.tanh(tx @ w.T + b1) @ w + b2

    tparams = check_vs_torch(model, tfn, x, x.copy(), mc.MSELoss())
    # the shared gradient is the sum of both uses: each alone differs from it
    w = t(enc.weight.data)
    w_enc, w_dec = w.clone().requires_grad_(), w.clone().requires_grad_()
    out = torch.tanh(t(x) @ w_enc.T + t(enc.bias.data)) @ w_dec + t(dec.bias.data)
    F.mse_loss(out, t(x)).backward()
    np.testing.assert_allclose(w_enc.grad + w_dec.grad, tparams[0].grad, rtol=1e-12)
    assert np.max(np.abs(w_enc.grad.numpy())) > 1e-3 and np.max(np.abs(w_dec.grad.numpy())) > 1e-3
    assert_gradcheck(model, x[:3])


def test_tied_autoencoder_both_paths_and_torch_training():
    rng = np.random.default_rng(1)
    data = [(x, x) for x in (rng.standard_normal((8, 8)) for _ in range(8))]
    train_both(tied_autoencoder, data, mc.MSELoss())
    # optimizer steps the shared weight once per step, as torch with one tensor used twice
    model = tied_autoencoder()
    w, b1, b2 = (t(p.data, grad=True) for p in model.parameters())
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert len(opt.params) == 3
    topt = torch.optim.SGD([w, b1, b2], lr=0.1, momentum=0.9)
    net = model.compiled()
    for x, y in data:
        net.train_step(opt._core, mc.MSELoss.kind, x, y)
        topt.zero_grad()
        F.mse_loss(torch.tanh(t(x) @ w.T + b1) @ w + b2, t(y)).backward()
        topt.step()
    for p, tp in zip(model.parameters(), (w, b1, b2)):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_tied_without_transpose_vs_torch_and_both_paths():
    """A later layer reusing an earlier layer's weight as is (8 -> 3 twice)."""
    def make():
        enc = mc.Linear(8, 3, dtype=F64, seed=0)
        return mc.Sequential(enc, mc.Tanh(), mc.Linear(3, 8, dtype=F64, seed=1), mc.Tanh(),
                             mc.TiedLinear(enc, transpose=False, bias=False))

    model = make()
    assert model[4].in_features == 8 and model[4].out_features == 3 and model[4].bias is None
    x, y = batches(8, 3, steps=1)[0]

    def tfn(tx, w0, b0, w1, b1):
        h = torch.tanh(torch.tanh(tx @ w0.T + b0) @ w1.T + b1)
        return h @ w0.T

    check_vs_torch(model, tfn, x, y, mc.CrossEntropyLoss())
    train_both(make, batches(8, 3), mc.CrossEntropyLoss())


def test_tied_linear_argument_errors():
    with pytest.raises(TypeError, match="source"):
        mc.TiedLinear(mc.ReLU())
