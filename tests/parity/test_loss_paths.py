"""Every loss and parameter setting (tests/loss_cases.py) through both execution paths, with and
without sample weights: the compiled network (train_step, train_epoch, evaluate) against the
module path (bit for bit in float64), and a whole run — Trainer.fit with sample weights, shuffled
mini-batches, SGD with momentum, 3 epochs, float64 — against a PyTorch loop doing the same, step
for step (each batch's loss the weighted mean sum(w v) / sum(w n) of its rows).
"""

import mlpcore as mc
import numpy as np
import pytest
from helpers import assert_close_torch, import_torch

torch = import_torch()

import loss_cases as lc

N_IN, HIDDEN, N_OUT = 5, 7, 3
FAST = ["mse", "huber_0.3", "smooth_l1_0.3", "l1", "bce_pos_weight", "poisson_full", "poisson_rate", "ce_weight_smooth",
        "ce"]


def mlp(case, dtype, seed=10):
    layers = [mc.Linear(N_IN, HIDDEN, dtype=dtype, seed=seed), mc.Tanh(), mc.Linear(HIDDEN, N_OUT, dtype=dtype,
                                                                                     seed=seed + 1)]
    if case.pred == "positive":  # a rate: keep the output positive
        layers.append(mc.Sigmoid())
    return mc.Sequential(*layers)


def data(case, dtype, n, seed=0, zeros=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN)).astype(dtype)
    Y = lc.make_target(case, rng, n, N_OUT, dtype)
    w = rng.uniform(0.0, 2.0, n).astype(dtype)
    if zeros:
        w[1::5] = 0.0
    return X, Y, w


def module_step(model, loss, opt, x, y, w):
    model.zero_grad()
    value = loss(model._forward_modules(x), y, w)
    model._backward_modules(loss.backward())
    opt.step()
    return value


def assert_same(a, b, dtype):
    for p, q in zip(a.parameters(), b.parameters()):
        if dtype == np.float64:
            np.testing.assert_array_equal(p.data, q.data)
        else:
            np.testing.assert_allclose(p.data, q.data, rtol=1e-6, atol=1e-6 * np.max(np.abs(q.data)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("weighted", [False, True], ids=["mean", "weighted"])
@pytest.mark.parametrize("name", lc.NAMES)
def test_train_step_matches_module_path(name, weighted, dtype):
    case = lc.CASES[name]
    a, b = mlp(case, dtype), mlp(case, dtype)
    loss = case.make(N_OUT)
    oa = mc.SGD(a.parameters(), lr=0.05, momentum=0.9)
    ob = mc.SGD(b.parameters(), lr=0.05, momentum=0.9)
    net = b.compiled()
    for step in range(4):
        x, y, w = data(case, dtype, 8, seed=step)
        w = w if weighted else None
        va = module_step(a, loss, oa, x, y, w)
        vb = net.train_step(ob._core, loss.spec, x, y, sample_weight=w)
        assert va == vb if dtype == np.float64 else va == pytest.approx(vb, rel=1e-6)
    assert_same(a, b, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", FAST)
def test_shuffled_weighted_epochs_match_the_module_path(name, dtype):
    """47 rows in shuffled batches of 10 (the last of 7), the weights gathered with the rows."""
    case = lc.CASES[name]
    n, bs = 47, 10
    X, Y, w = data(case, dtype, n, seed=3)
    a, b = mlp(case, dtype), mlp(case, dtype)
    loss = case.make(N_OUT)
    oa, ob = mc.Adam(a.parameters(), lr=0.01), mc.Adam(b.parameters(), lr=0.01)
    net = b.compiled()
    for epoch in range(2):
        seed = mc.trainer.epoch_seed(9, epoch)
        order = mc._core.permutation(n, seed)
        values, sizes = [], []
        for s in range(0, n, bs):
            idx = order[s:s + bs]
            values.append(module_step(a, loss, oa, X[idx], Y[idx], w[idx]))
            sizes.append(len(idx))
        mean = sum(v * k for v, k in zip(values, sizes)) / n
        r = net.train_epoch(ob._core, loss.spec, X, Y, bs, True, seed, epoch, sample_weight=w)
        assert r.rows == n
        assert r.loss == pytest.approx(mean, rel=1e-12 if dtype == np.float64 else 1e-6)
    assert_same(a, b, dtype)


@pytest.mark.parametrize("name", FAST)
def test_split_weighted_epoch_equals_one_call(name):
    case = lc.CASES[name]
    X, Y, w = data(case, np.float64, 40, seed=4)
    results = []
    for split in (False, True):
        model = mlp(case, np.float64)
        opt = mc.SGD(model.parameters(), lr=0.05, momentum=0.9)
        net, spec = model.compiled(), case.make(N_OUT).spec
        if split:
            parts = [net.train_epoch(opt._core, spec, X, Y, 6, True, 5, 0, batch_begin=b, batch_end=b + 2,
                                     sample_weight=w) for b in range(0, 7, 2)]
            loss = sum(p.loss * p.rows for p in parts) / sum(p.rows for p in parts)
        else:
            loss = net.train_epoch(opt._core, spec, X, Y, 6, True, 5, 0, sample_weight=w).loss
        results.append((loss, [p.data.copy() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-14)
    for p, q in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("name", lc.NAMES)
def test_weighted_evaluate_is_the_whole_set_mean_whatever_the_batch_size(name):
    case = lc.CASES[name]
    X, Y, w = data(case, np.float64, 23, seed=6)
    model = mlp(case, np.float64)
    loss = case.make(N_OUT)
    net = model.compiled()
    want = loss(model(X), Y, w)
    invariant = mc.get_batch_invariant()
    mc.set_batch_invariant(True)  # outputs independent of the batch: the sums alone are checked
    try:
        got = [net.evaluate(loss.spec, X, Y, bs, sample_weight=w)[0] for bs in (1, 4, 23, 100)]
    finally:
        mc.set_batch_invariant(invariant)
    assert got[0] == pytest.approx(want, rel=1e-13)
    assert len(set(got)) == 1  # the sums run row after row across batches
    assert net.evaluate(loss.spec, X, Y, 5)[0] == pytest.approx(loss(model(X), Y), rel=1e-13)


@pytest.mark.parametrize("name", ["mse", "ce_weight", "bce_pos_weight", "poisson"])
def test_compiled_step_with_all_zero_weights_changes_nothing(name):
    """A batch whose weights sum to 0: loss 0, zero gradient, the weights stay (no NaN)."""
    case = lc.CASES[name]
    X, Y, _ = data(case, np.float64, 8)
    model = mlp(case, np.float64)
    before = [p.data.copy() for p in model.parameters()]
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = case.make(N_OUT)
    assert model.compiled().train_step(opt._core, loss.spec, X, Y, sample_weight=np.zeros(8)) == 0.0
    for p, q in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, q)
        assert np.all(p.grad == 0.0)
    # one zero-weight batch inside an epoch (unshuffled): finite, the other batches train
    w = np.ones(16)
    w[:8] = 0.0
    X2, Y2, _ = data(case, np.float64, 16)
    r = model.compiled().train_epoch(opt._core, loss.spec, X2, Y2, 8, False, 0, sample_weight=w)
    assert np.isfinite(r.loss) and all(np.all(np.isfinite(p.data)) for p in model.parameters())


# ----- a whole run against PyTorch ---------------------------------------------------------------

class TorchTwin(torch.nn.Module):
    """The PyTorch twin of mlp(case): the same layers with copied weights."""

    def __init__(self, model):
        super().__init__()
        mods = []
        for m in model:
            if isinstance(m, mc.Linear):
                lin = torch.nn.Linear(m.in_features, m.out_features, dtype=torch.float64)
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(m.weight.data.copy()))
                    lin.bias.copy_(torch.from_numpy(m.bias.data.copy()))
                mods.append(lin)
            else:
                mods.append(torch.nn.Tanh() if isinstance(m, mc.Tanh) else torch.nn.Sigmoid())
        self.net = torch.nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


def torch_fit(case, model, X, Y, w, epochs, bs, seed, lr, momentum):
    """Trainer.fit's documented batches (permutation(n, epoch_seed(seed, e))) in a PyTorch loop;
    returns the twin and the per-epoch mean batch loss (weighted by batch rows)."""
    twin = TorchTwin(model)
    opt = torch.optim.SGD(twin.parameters(), lr=lr, momentum=momentum)
    n, losses = X.shape[0], []
    for e in range(epochs):
        order = mc._core.permutation(n, mc.trainer.epoch_seed(seed, e))
        total = 0.0
        for s in range(0, n, bs):
            idx = order[s:s + bs]
            opt.zero_grad()
            out = twin(torch.from_numpy(X[idx]))
            wt = None if w is None else torch.from_numpy(w[idx])
            value = lc.torch_value(case, out, lc.torch_target(case, Y[idx]), N_OUT, wt)
            value.backward()
            opt.step()
            total += value.item() * len(idx)
        losses.append(total / n)
    return twin, losses


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "modules"])
@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "mean"])
@pytest.mark.parametrize("name", lc.NAMES)
def test_trainer_fit_matches_a_torch_loop(name, weighted, compiled):
    case = lc.CASES[name]
    X, Y, w = data(case, np.float64, 30, seed=8)
    w = w if weighted else None
    model = mlp(case, np.float64, seed=20)
    twin_args = (case, model, X, Y, w, 3, 8, 5, 0.05, 0.9)
    twin, want = torch_fit(*twin_args)
    trainer = mc.Trainer(model, loss=case.make(N_OUT), optimizer=mc.SGD(model.parameters(), lr=0.05, momentum=0.9),
                         batch_size=8, compiled=compiled)
    history = trainer.fit(X, Y, epochs=3, seed=5, verbose=0, sample_weight=w)
    where = f"fit {name} {'weighted' if weighted else 'mean'} {'compiled' if compiled else 'modules'}"
    assert_close_torch(np.array(history.history["loss"]), np.array(want), np.float64, where + " epoch losses")
    linears = [m for m in model if isinstance(m, mc.Linear)]
    tlin = [m for m in twin.net if isinstance(m, torch.nn.Linear)]
    for k, (m, t) in enumerate(zip(linears, tlin)):
        assert_close_torch(m.weight.data, t.weight, np.float64, f"{where} layer {k} weight")
        assert_close_torch(m.bias.data, t.bias, np.float64, f"{where} layer {k} bias")
