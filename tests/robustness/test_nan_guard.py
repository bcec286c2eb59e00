"""The NaN/Inf guard of the compiled path, and what happens to NaN weights.

Policy (network.h, trainer.py): ``Network.train_epoch(..., check_finite=True)`` (the default) and
``Network.train_step(..., check_finite=True)`` raise RuntimeError at the first non-finite batch
loss, naming the epoch and the batch counted from 1 ("non-finite loss (nan) at epoch 3, batch 2"), *before*
that batch's backward pass and optimizer step: the weights are exactly those left by the previous
batch. RuntimeError because training reached a bad state (the inputs were valid); the Trainer and
the scikit-learn estimators rely on it. ``mlpcore.save`` refuses NaN/Inf weights (ValueError)
unless ``allow_nonfinite=True``. A checkpoint of another architecture is refused on load.
"""

import math
import re

import mlpcore as mc
import numpy as np
import pytest

MSE, CE = mc.MSELoss.kind, mc.CrossEntropyLoss.kind
MESSAGE = re.compile(
    r"non-finite loss \(([-a-z]+)\) at epoch (\d+), batch (\d+); training stopped before this "
    r"batch updated the weights"
)


def regressor(dtype=np.float32):
    return mc.Sequential(
        mc.Linear(4, 16, dtype=dtype, seed=1), mc.Tanh(), mc.Linear(16, 2, dtype=dtype, seed=2)
    )


def data(n=48, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(dtype), rng.standard_normal((n, 2)).astype(dtype)


def weights(model):
    return [p.data.copy() for p in model.parameters()]


def assert_same(a, b):
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)  # NaN == NaN here: bitwise state, not values


@pytest.mark.parametrize("shuffle", [False, True])
def test_diverging_learning_rate_stops_naming_epoch_and_batch(shuffle):
    """A huge learning rate diverges; the error names epoch and batch, and the weights are those
    after the previous batch: replaying exactly that many batches on a twin gives them bitwise."""
    X, Y = data()
    model = regressor()
    opt = mc.SGD(model.parameters(), lr=1e4, momentum=0.9)
    net = model.compiled()
    with pytest.raises(RuntimeError) as info:
        for epoch in range(50):
            net.train_epoch(opt._core, MSE, X, Y, 8, shuffle, 7 + epoch, epoch)
    m = MESSAGE.search(str(info.value))
    assert m, str(info.value)
    value, epoch, batch = m.group(1), int(m.group(2)) - 1, int(m.group(3)) - 1  # counted from 1
    assert value in ("nan", "inf", "-inf")
    steps = epoch * 6 + batch
    assert opt.step_count == steps  # no step for the failing batch

    twin = regressor()
    topt = mc.SGD(twin.parameters(), lr=1e4, momentum=0.9)
    tnet = twin.compiled()
    for e in range(epoch):
        tnet.train_epoch(topt._core, MSE, X, Y, 8, shuffle, 7 + e, e, False)
    if batch:
        tnet.train_epoch(topt._core, MSE, X, Y, 8, shuffle, 7 + epoch, epoch, False, 0, batch)
    assert topt.step_count == steps
    assert_same(weights(model), weights(twin))
    # the optimizer state (momentum) was not touched by the failing batch either
    np.testing.assert_array_equal(opt._core.read_state(), topt._core.read_state())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_an_overflowing_row_stops_at_its_batch(dtype):
    """A finite target row large enough to overflow the squared error (1e38 in float32, 1e300 in
    float64): the guard stops at that row's batch, whatever epoch index the caller passes."""
    X, Y = data(dtype=dtype)
    Y[29] = 1e38 if dtype == np.float32 else 1e300  # finite: accepted at the edge
    model = regressor(dtype)
    before = weights(model)
    opt = mc.Adam(model.parameters(), lr=1e-3)
    net = model.compiled()
    with pytest.raises(RuntimeError, match=r"at epoch 6, batch 4;"):  # epoch index 5, batch index 3
        net.train_epoch(opt._core, MSE, X, Y, 8, False, 0, 5)
    assert opt.step_count == 3
    twin = regressor(dtype)
    assert_same(before, weights(twin))
    topt = mc.Adam(twin.parameters(), lr=1e-3)
    twin.compiled().train_epoch(topt._core, MSE, X[:24], Y[:24], 8, False, 0, 5)
    assert_same(weights(model), weights(twin))
    assert all(np.all(np.isfinite(w)) for w in weights(model))
    # without the guard the epoch runs on through all 6 batches and reports the non-finite mean
    model2 = regressor(dtype)
    opt2 = mc.Adam(model2.parameters(), lr=1e-3)
    value = model2.compiled().train_epoch(opt2._core, MSE, X, Y, 8, False, 0, 5, False).loss
    assert not math.isfinite(value) and opt2.step_count == 6


def test_train_step_guard():
    X, Y = data(8)
    Y[3] = 1e38
    model = regressor()
    before = weights(model)
    opt = mc.SGD(model.parameters(), lr=0.1)
    net = model.compiled()
    with pytest.raises(
        RuntimeError, match=r"non-finite loss \((inf|nan)\) in a single training step \(train_on_batch\); training stopped before"
    ):
        net.train_step(opt._core, MSE, X, Y)
    assert_same(before, weights(model))
    assert opt.step_count == 0
    value = net.train_step(opt._core, MSE, X, Y, check_finite=False)  # explicitly off: trains on
    assert not math.isfinite(value) and opt.step_count == 1


def test_cross_entropy_guard_and_evaluate_after_divergence():
    """Classification diverging to NaN: stopped by the guard; evaluate/predict on the weights of
    the previous batch still run."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = mc.Sequential(mc.Linear(4, 32, seed=0), mc.ReLU(), mc.Linear(32, 3, seed=1))
    opt = mc.SGD(model.parameters(), lr=1e30)
    net = model.compiled()
    with pytest.raises(RuntimeError, match=MESSAGE.pattern):
        for epoch in range(20):
            net.train_epoch(opt._core, CE, X, y, 16, True, epoch, epoch)
    mc.set_check_finite(False)  # the weights may be huge: outputs may be Inf, which evaluate reports
    value, correct = net.evaluate(CE, X, y)
    assert 0 <= correct <= 64
    assert net.predict(X).shape == (64, 3)


def test_save_refuses_nan_weights(tmp_path):
    pytest.importorskip("safetensors")
    X, Y = data()
    model = regressor()
    opt = mc.SGD(model.parameters(), lr=1e6)
    net = model.compiled()
    with np.errstate(all="ignore"):
        for epoch in range(5):
            net.train_epoch(opt._core, MSE, X, Y, 8, False, 0, epoch, False)  # guard off: diverges to NaN
    assert not all(np.all(np.isfinite(w)) for w in weights(model))
    path = tmp_path / "nan.safetensors"
    with pytest.raises(
        ValueError, match=r"parameter '\d\.(weight|bias)' contains NaN or Inf; refusing to save"
    ):
        mc.save(model, path)
    assert not path.exists()
    mc.save(model, path, allow_nonfinite=True)  # explicitly allowed: kept as is
    loaded = mc.load(path)
    assert_same(weights(model), weights(loaded))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    pytest.importorskip("safetensors")
    X, Y = data()
    model = regressor()
    path = tmp_path / "m.safetensors"
    mc.save(model, path)
    wider = mc.Sequential(mc.Linear(4, 17, seed=1), mc.Tanh(), mc.Linear(17, 2, seed=2))
    deeper = mc.Sequential(
        mc.Linear(4, 16, seed=1), mc.Tanh(), mc.Linear(16, 16), mc.Tanh(), mc.Linear(16, 2)
    )
    f64 = regressor(np.float64)
    before = weights(wider)
    with pytest.raises(ValueError, match=r"'0\.weight' has shape \(16, 4\) in the file but \(17, 4\)"):
        mc.load_state_into(wider, path)
    assert_same(before, weights(wider))  # nothing half-loaded
    with pytest.raises(ValueError, match=r"missing \['4\.weight', '4\.bias'\]"):
        mc.load_checkpoint(path, model=deeper)
    resumable = tmp_path / "r.safetensors"  # resume checks for optimizer state first
    mc.save(model, resumable, optimizer=mc.SGD(model.parameters()), epoch=1)
    with pytest.raises(ValueError, match="resume_from: .*do not match the model"):
        mc.Trainer(deeper, loss=mc.MSELoss()).fit(X, Y, epochs=2, resume_from=str(resumable), verbose=0)
    # another dtype with the same architecture loads, converted (documented: weights are copied in)
    mc.load_state_into(f64, path)
    for p, q in zip(weights(f64), weights(model)):
        np.testing.assert_array_equal(p, q.astype(np.float64))
