"""Frozen parameters (requires_grad = False), as in PyTorch: no update, no gradient computed (the
compiled network gets no gradient pointer: no dW GEMM, and no backward below the first trainable
layer), optimizers skip them and keep their state, and a fit with frozen layers equals a PyTorch
loop. Freezing never changes the optimizer's state_dict layout."""

import helpers
import mlpcore as mc
import numpy as np
import pytest

torch = helpers.import_torch()


def _model(seed=0):
    return mc.Sequential(mc.Linear(5, 12, dtype=np.float64, seed=seed), mc.Tanh(),
                         mc.Linear(12, 12, dtype=np.float64, seed=seed + 1), mc.ReLU(),
                         mc.Linear(12, 3, dtype=np.float64, seed=seed + 2))


def _data(n=40):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 3] > 0.5).astype(int)


@pytest.mark.parametrize("compiled", [None, False])
def test_frozen_parameters_get_no_update_and_no_gradient(compiled):
    X, y = _data()
    model = _model()
    for p in (model[0].weight, model[0].bias, model[2].weight):
        p.requires_grad = False
    frozen = {id(p): p.data.copy() for p in model.parameters() if not p.requires_grad}
    for p in model.parameters():
        if not p.requires_grad:
            p.grad = np.full(p.shape, 5.0)  # a sentinel no backward may touch
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    mc.Trainer(model, optimizer=opt, batch_size=8, compiled=compiled).fit(X, y, epochs=2, verbose=0)
    for p in model.parameters():
        if id(p) in frozen:
            np.testing.assert_array_equal(p.data, frozen[id(p)])
            # the compiled step overwrites gradients but has no pointer to these; the module path
            # zeroes every gradient (zero_grad: one fill per arena) and adds nothing to these
            np.testing.assert_array_equal(p.grad, 0.0 if compiled is False else 5.0)
    assert not np.array_equal(model[2].bias.grad, 0.0)  # the trainable ones did train


def test_freezing_after_the_optimizer_is_built_keeps_its_state_and_matches_pytorch():
    """Freeze the first layer for two epochs, then unfreeze it: the momentum buffer it had is
    used again, as PyTorch (whose optimizer skips parameters without a gradient)."""
    X, y = _data()
    model = _model()
    twin = model.to_torch()
    opt = mc.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    trainer = mc.Trainer(model, optimizer=opt, batch_size=10)
    losses = []
    for epoch, frozen in enumerate([False, True, True, False]):
        model[0].weight.requires_grad = model[0].bias.requires_grad = not frozen
        losses += trainer.fit(X, y, epochs=1, seed=epoch, shuffle=False, verbose=0).history["loss"]
    tlosses = []
    for epoch, frozen in enumerate([False, True, True, False]):
        twin[0].weight.requires_grad_(not frozen)
        twin[0].bias.requires_grad_(not frozen)
        total = 0.0
        for start in range(0, len(X), 10):
            topt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(X[start:start + 10])),
                                                     torch.from_numpy(y[start:start + 10]))
            loss.backward()
            topt.step()
            total += loss.item() * 10
        tlosses.append(total / len(X))
    helpers.assert_close_torch(np.array(losses), np.array(tlosses), np.float64, "freeze/unfreeze fit losses")
    for (name, p), tp in zip(model.named_parameters(), twin.parameters()):
        helpers.assert_close_torch(p.data, tp, np.float64, f"freeze/unfreeze fit {name}")


def test_optimizer_state_dict_does_not_depend_on_freezing():
    X, y = _data(16)
    model = _model()
    opt = mc.Adam(model.parameters(), lr=0.01)
    trainer = mc.Trainer(model, optimizer=opt)
    trainer.train_on_batch(X, y)
    before = opt.state_dict()
    model[2].weight.requires_grad = False
    during = opt.state_dict()
    assert during["state"].shape == before["state"].shape
    np.testing.assert_array_equal(during["state"], before["state"])
    other = mc.Adam(model.parameters(), lr=0.01)  # built while frozen: loads the same layout
    other.load_state_dict(before)
    np.testing.assert_array_equal(other.state_dict()["state"], before["state"])
    model[2].weight.requires_grad = True
    np.testing.assert_array_equal(opt.state_dict()["state"], before["state"])


def test_frozen_layers_below_the_first_trainable_one_cost_no_backward():
    """With the first two layers frozen, the compiled step still equals the module path (which
    computes every d/dx) and writes no gradient of those layers."""
    X, y = _data(8)
    a, b = _model(), _model()
    for m in (a, b):
        for p in m[0].parameters() + m[2].parameters():
            p.requires_grad = False
            p.grad = np.full(p.shape, 3.0)
    oa, ob = mc.Adam(a.parameters(), lr=0.01), mc.Adam(b.parameters(), lr=0.01)
    ta, tb = mc.Trainer(a, optimizer=oa), mc.Trainer(b, optimizer=ob, compiled=False)
    for _ in range(3):
        assert ta.train_on_batch(X, y) == tb.train_on_batch(X, y)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    for p in a[0].parameters() + a[2].parameters():
        np.testing.assert_array_equal(p.grad, 3.0)
    assert a.compiled() is not None


def test_requires_grad_recompiles_and_round_trips():
    model = _model()
    net = model.compiled()
    model[4].weight.requires_grad_(False)
    assert model.compiled() is not net  # the lowered ops carry the frozen flags
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, True, False, True]


def test_torch_twins_keep_the_frozen_parameters():
    """to_torch / from_torch carry requires_grad both ways, as they carry the train/eval mode."""
    model = mc.Sequential(mc.Linear(5, 8, seed=0), mc.LayerNorm(8), mc.ReLU(), mc.BatchNorm1d(8),
                          mc.Linear(8, 3, seed=1))
    model[0].weight.requires_grad = False
    model[1].bias.requires_grad = False
    model[3].weight.requires_grad = False
    frozen = [p.requires_grad for p in model.parameters()]
    twin = model.to_torch()
    assert [p.requires_grad for p in twin.parameters()] == frozen
    twin[4].bias.requires_grad_(False)
    back = mc.from_torch(twin)
    assert [p.requires_grad for p in back.parameters()] == [p.requires_grad for p in twin.parameters()]
    assert not back[4].bias.requires_grad and back[4].weight.requires_grad
