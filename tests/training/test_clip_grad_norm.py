"""Gradient clipping: mc.clip_grad_norm_ against torch.nn.utils.clip_grad_norm_, the C++ pass in
the compiled epoch (between backward and the optimizer step) against the module path and against
a PyTorch loop, and its argument checks."""

import helpers
import mlpcore as mc
import numpy as np
import pytest

torch = helpers.import_torch()


def _model(dtype=np.float64, seed=0):
    return mc.Sequential(mc.Linear(5, 16, dtype=dtype, seed=seed), mc.Tanh(), mc.Linear(16, 16, dtype=dtype, seed=seed + 1),
                         mc.ReLU(), mc.Linear(16, 3, dtype=dtype, seed=seed + 2))


def _grads(model, scale=3.0):
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.grad = rng.standard_normal(p.shape) * scale


@pytest.mark.parametrize("dtype", helpers.DTYPES)
@pytest.mark.parametrize("max_norm", [0.5, 1e3, 0.0])
def test_clip_grad_norm_matches_torch(dtype, max_norm):
    model = _model(dtype)
    _grads(model)
    twin = model.to_torch()
    for p, tp in zip(model.parameters(), twin.parameters()):
        tp.grad = torch.from_numpy(p.grad.copy())
    norm = mc.clip_grad_norm_(model.parameters(), max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm)
    assert isinstance(norm, float)
    helpers.assert_close_torch(norm, tnorm, dtype, f"clip_grad_norm_ norm max_norm={max_norm}")
    for (name, p), tp in zip(model.named_parameters(), twin.parameters()):
        helpers.assert_close_torch(p.grad, tp.grad, dtype, f"clip_grad_norm_ {name} max_norm={max_norm}")


def test_clip_grad_norm_skips_frozen_parameters_and_takes_one_parameter():
    model = _model()
    _grads(model)
    model[0].weight.requires_grad = False
    frozen = model[0].weight.grad
    rest = [p for p in model.parameters() if p.requires_grad]
    want = float(np.sqrt(sum(np.sum(p.grad ** 2) for p in rest)))
    assert mc.clip_grad_norm_(model.parameters(), 1.0) == pytest.approx(want, rel=1e-12)
    np.testing.assert_array_equal(model[0].weight.grad, frozen)
    assert float(np.sqrt(sum(np.sum(p.grad ** 2) for p in rest))) == pytest.approx(1.0, rel=1e-5)
    one = model[2].weight
    one.grad = np.full(one.shape, 2.0)
    assert mc.clip_grad_norm_(one, 1.0) == pytest.approx(2.0 * 16)
    assert mc.clip_grad_norm_([], 1.0) == 0.0


def test_clip_grad_norm_errors():
    model = _model()
    with pytest.raises(ValueError, match="max_norm"):
        mc.clip_grad_norm_(model.parameters(), -1.0)
    with pytest.raises(ValueError, match="max_norm"):
        mc.clip_grad_norm_(model.parameters(), float("nan"))
    with pytest.raises(ValueError, match="norm_type"):
        mc.clip_grad_norm_(model.parameters(), 1.0, norm_type=1.0)
    with pytest.raises(TypeError, match="Parameter"):
        mc.clip_grad_norm_([np.zeros(3)], 1.0)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        mc.Trainer(model, clip_grad_norm=-0.5)
    net, opt = model.compiled(), mc.SGD(model.parameters(), lr=0.1)
    x, y = np.zeros((4, 5)), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="max_norm"):
        net.train_step(opt._core, mc.CrossEntropyLoss().kind, x, y, clip_grad_norm=-1.0)
    with pytest.raises(ValueError, match="max_norm"):
        net.train_epoch(opt._core, mc.CrossEntropyLoss().kind, x, y, 2, False, 0, clip_grad_norm=float("inf"))
    g = model[0].weight
    g.grad[...] = np.nan  # in place (the setter refuses NaN)
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        mc.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
    assert np.isnan(mc.clip_grad_norm_(model.parameters(), 1.0))  # PyTorch: NaN spreads to every gradient
    assert np.all(np.isnan(model[2].weight.grad))


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)) * 3
    return X, (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)


@pytest.mark.parametrize("batch_size", [48, 16])
@pytest.mark.parametrize("compiled", [None, False])
def test_trainer_clipping_equals_a_pytorch_loop(batch_size, compiled):
    """Trainer(clip_grad_norm=0.5).fit equals zero_grad, forward, loss, backward,
    clip_grad_norm_, step in PyTorch, step for step (float64; full batch and mini-batches)."""
    X, y = _data()
    model = _model()
    twin = model.to_torch()
    opt = mc.SGD(model.parameters(), lr=0.2, momentum=0.9)
    trainer = mc.Trainer(model, optimizer=opt, batch_size=batch_size, compiled=compiled, clip_grad_norm=0.5)
    norms = []

    class Spy(mc.callbacks.Callback):  # the loss of every batch, to compare step by step
        def on_batch_end(self, batch, logs=None):
            norms.append(logs["loss"])

    trainer.fit(X, y, epochs=3, seed=7, callbacks=[Spy()], verbose=0)
    topt = torch.optim.SGD(twin.parameters(), lr=0.2, momentum=0.9)
    tl = []
    for epoch in range(3):
        order = mc._core.permutation(len(X), mc.trainer.epoch_seed(7, epoch))
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(X[idx])), torch.from_numpy(y[idx]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
            topt.step()
            tl.append(loss.item())
    helpers.assert_close_torch(np.array(norms), np.array(tl), np.float64, f"clipped fit losses bs={batch_size}")
    for (name, p), tp in zip(model.named_parameters(), twin.parameters()):
        helpers.assert_close_torch(p.data, tp, np.float64, f"clipped fit {name} bs={batch_size}")


def test_compiled_and_module_paths_clip_alike_in_train_on_batch():
    X, y = _data(16)
    a, b = _model(), _model()
    ta = mc.Trainer(a, optimizer=mc.Adam(a.parameters(), lr=0.01), clip_grad_norm=0.1)
    tb = mc.Trainer(b, optimizer=mc.Adam(b.parameters(), lr=0.01), clip_grad_norm=0.1, compiled=False)
    for _ in range(3):
        assert ta.train_on_batch(X, y) == tb.train_on_batch(X, y)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
