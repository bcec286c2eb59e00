"""Edges of the private compiled-network bindings that must not crash or race:
concurrent forward calls, trusted (validate=False) labels out of range, malformed op specs."""

import threading

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import _core


def _model(seed=0):
    return mc.Sequential(mc.Linear(8, 64, seed=seed), mc.ReLU(), mc.Linear(64, 4, seed=seed + 1))


def test_concurrent_forward_calls_each_get_their_own_output():
    # forward copies the output out of the shared workspace under the network's lock; before,
    # the copy ran after the lock was released and another thread's call could overwrite it.
    model = _model()
    net = model.compiled()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (3, 50)]
    want = [net.forward(x) for x in xs]
    bad = []

    def worker(k):
        for _ in range(300):
            if not np.array_equal(net.forward(xs[k]), want[k]):
                bad.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_trusted_int32_labels_are_still_range_checked():
    model = _model()
    net = model.compiled()
    opt = mc.SGD(model.parameters(), lr=0.1)
    X = np.zeros((6, 8), np.float32)
    y = np.array([0, 1, 2, 3, 4, 1], np.int32)  # 4 is out of range for 4 classes
    with pytest.raises(ValueError, match="out of range"):
        net.train_epoch(opt._core, _core.LossKind.cross_entropy, X, y, 2, False, 0, validate=False)


def _spec(kind, **kw):
    s = _core.OpSpec()
    s.kind = kind
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def test_malformed_op_specs_are_refused():
    arena = _core.ParamArena("cpu", np.float32, 64)
    lin = dict(in_features=4, out_features=4, weight_off=0, bias_off=16)
    with pytest.raises(ValueError, match="dropout"):
        _core.Network(arena, [_spec(_core.OpKind.linear, **lin), _spec(_core.OpKind.dropout, p=0.5)], 4)
    with pytest.raises(ValueError, match="skip"):
        _core.Network(arena, [_spec(_core.OpKind.residual_add, skip=1), _spec(_core.OpKind.linear, **lin)], 4)
    with pytest.raises(ValueError, match="in_features"):
        _core.Network(arena, [_spec(_core.OpKind.linear, **lin)], 0)


def test_private_module_kernels_check_the_arrays_they_trust():
    f32 = np.float32
    x = np.ones((3, 4), f32)
    w = np.ones((5, 4), f32)
    with pytest.raises(ValueError, match="weight"):
        _core.linear_forward(x, w.astype(np.float64), None, False, f32)  # dtype differs from the model's
    with pytest.raises(ValueError, match="bias"):
        _core.linear_forward(x, w, np.ones(1, f32), False, f32)  # bias shorter than out_features
    with pytest.raises(ValueError, match="x"):
        _core.linear_backward(np.ones((3, 5), f32), np.ones((3, 7), f32), w, np.zeros((5, 4), f32), None, True,
                              False, f32)
    a = np.ones((3, 4), f32)
    with pytest.raises(ValueError, match="x"):
        _core.act_backward(_core.ActKind.gelu, 0.0, a, np.ones((2, 4), f32), a, f32)
    with pytest.raises(ValueError, match="b"):
        _core.mul(a, np.ones((3, 4), np.float64), f32)
    _, idx = _core.maxout_forward(np.ones((2, 6), f32), 3, f32)
    with pytest.raises(ValueError, match="idx"):
        _core.maxout_backward(np.ones((2, 2), f32), idx + 7, 3, f32)  # winners outside their group
