"""Batch-invariant inference (_core.set_batch_invariant): on the CPU, every output row of
Network.predict, Network.evaluate and eval-mode Network.forward is bitwise the same whatever the
other rows of its batch, the batch size and the thread count. Training is unaffected."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import _core

ACTIVATIONS = {
    "relu": mc.ReLU, "leaky_relu": lambda: mc.LeakyReLU(0.1), "sigmoid": mc.Sigmoid, "tanh": mc.Tanh,
    "elu": lambda: mc.ELU(0.7), "gelu": mc.GELU, "silu": mc.SiLU, "identity": mc.Identity, "softmax": mc.Softmax,
}


@pytest.fixture
def invariant():
    old_threads = mc.get_num_threads()
    _core.set_batch_invariant(True)
    yield
    _core.set_batch_invariant(False)
    mc.set_num_threads(old_threads)


def _model(act, dtype):
    return mc.Sequential(mc.Linear(37, 29, seed=1, dtype=dtype), act(), mc.Linear(29, 13, seed=2, dtype=dtype), act(),
                         mc.Linear(13, 5, seed=3, dtype=dtype))


def test_switch_is_process_wide_and_off_by_default():
    assert _core.get_batch_invariant() is False
    _core.set_batch_invariant(True)
    try:
        assert _core.get_batch_invariant() is True
    finally:
        _core.set_batch_invariant(False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_rows_do_not_depend_on_their_batch(invariant, act, dtype):
    rng = np.random.default_rng(2 * sorted(ACTIVATIONS).index(act) + (dtype == np.float64))
    model = _model(ACTIVATIONS[act], dtype)
    model.eval()
    net = model.compiled()
    X = rng.standard_normal((120, 37)).astype(dtype)
    ref = np.concatenate([net.predict(X[i:i + 1], 1) for i in range(len(X))])
    for threads in (1, 2):
        mc.set_num_threads(threads)
        for _ in range(6):  # random batch compositions, sizes and row positions
            rows = rng.choice(len(X), size=int(rng.integers(1, len(X) + 1)), replace=bool(rng.integers(2)))
            bs = int(rng.integers(1, len(rows) + 1))
            np.testing.assert_array_equal(net.predict(X[rows], bs), ref[rows])
            np.testing.assert_array_equal(net.forward(X[rows]), ref[rows])  # eval-mode forward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evaluate_does_not_depend_on_batch_size_or_threads(invariant, dtype):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((101, 37)).astype(dtype), rng.integers(0, 5, 101)
    Y = rng.standard_normal((101, 5)).astype(dtype)
    net = _model(mc.GELU, dtype).compiled()
    want_ce, want_mse = net.evaluate(_core.LossKind.cross_entropy, X, y, 1), net.evaluate(_core.LossKind.mse, X, Y, 1)
    for threads in (1, 2):
        mc.set_num_threads(threads)
        for bs in (2, 17, 64, 101, 1024):
            assert net.evaluate(_core.LossKind.cross_entropy, X, y, bs) == want_ce
            assert net.evaluate(_core.LossKind.mse, X, Y, bs) == want_mse


def test_module_path_linear_has_the_fixed_order_too(invariant):
    rng = np.random.default_rng(4)
    lin = mc.Linear(37, 29, seed=1)
    X = rng.standard_normal((40, 37)).astype(np.float32)
    b = lin.bias.data
    whole, _ = _core.linear_forward(X, lin.weight.data, b, False, np.float32, fixed_order=True)
    rows = np.concatenate([_core.linear_forward(X[i:i + 1], lin.weight.data, b, False, np.float32,
                                                fixed_order=True)[0] for i in range(40)])
    np.testing.assert_array_equal(whole, rows)
    np.testing.assert_allclose(whole, X @ lin.weight.data.T + b, rtol=1e-5, atol=1e-5)


def test_training_is_unaffected():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((64, 37)).astype(np.float32), rng.integers(0, 5, 64)
    results = []
    for on in (False, True):
        _core.set_batch_invariant(on)
        try:
            model = _model(mc.ReLU, np.float32)
            opt = mc.SGD(model.parameters(), lr=0.05, momentum=0.9)
            r = model.compiled().train_epoch(opt._core, _core.LossKind.cross_entropy, X, y, 16, True, 1)
            results.append((r, [p.data.copy() for p in model.parameters()]))
        finally:
            _core.set_batch_invariant(False)
    assert results[0][0] == results[1][0]
    for p, q in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(p, q)
