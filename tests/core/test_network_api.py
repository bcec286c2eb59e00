"""The compiled Network's bindings: EpochResult from train_epoch, networks over several
parameter arenas (OpSpec.arena), the validate= switches of train_step / evaluate, and
_core.epoch_seed."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.nn import registry
from mlpcore import _core

CE = _core.LossKind.cross_entropy
MSE = _core.LossKind.mse


def _data(n=30, fin=4, classes=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, fin)).astype(dtype), rng.integers(0, classes, n)


def _frozen(params):
    """An SGD optimizer whose steps leave the weights as they are (lr 0, set in the core)."""
    opt = mc.SGD(params, lr=1.0)
    opt._core.set_lr(0.0)
    return opt


def _model(dtype=np.float32):
    return mc.Sequential(mc.Linear(4, 6, seed=1, dtype=dtype), mc.Tanh(), mc.Linear(6, 3, seed=2, dtype=dtype))


def test_train_epoch_returns_an_epoch_result():
    X, y = _data()
    model = _model()
    net = model.compiled()
    frozen = _frozen(model.parameters())
    value, hits = net.evaluate(CE, X, y, 30)
    r = net.train_epoch(frozen._core, CE, X, y, 8, True, 3)
    assert isinstance(r, _core.EpochResult)
    assert isinstance(r.loss, float) and isinstance(r.correct, int) and isinstance(r.rows, int)
    assert (r.rows, r.correct) == (30, hits) and r.loss == pytest.approx(value, rel=1e-6)
    assert "rows=30" in repr(r)
    with pytest.raises(AttributeError):
        r.loss = 0.0
    # batch ranges: each call reports its own rows and hits; together they are the epoch's
    a = net.train_epoch(frozen._core, CE, X, y, 8, True, 3, batch_begin=0, batch_end=2)
    b = net.train_epoch(frozen._core, CE, X, y, 8, True, 3, batch_begin=2)
    assert (a.rows, b.rows) == (16, 14) and a.correct + b.correct == r.correct
    assert net.train_epoch(frozen._core, CE, X, y, 8, True, 3) == r
    assert net.train_epoch(frozen._core, MSE, X, np.zeros((30, 3), np.float32), 8, False, 0).correct == 0
    assert not hasattr(net, "last_correct")


def _two_arena_net(dtype=np.float32):
    """Linear(4, 6) - ReLU - Linear(6, 3), each Linear in its own arena (as built, never moved)."""
    l1, l2 = mc.Linear(4, 6, seed=1, dtype=dtype), mc.Linear(6, 3, seed=2, dtype=dtype)
    net = _core.Network([l1.weight._arena.core, l2.weight._arena.core], _ops(l1, l2), 4)
    return net, l1, l2


def _ops(l1, l2):
    """The ops of l1 - ReLU - l2 as the registry lowers them (l2's ops index arena 1)."""
    ctx = registry.LowerContext()
    ops = ctx.lower(l1, 0) + ctx.lower(mc.ReLU(), 1) + ctx.lower(l2, 2)
    assert [a.core for a in ctx.arenas] == [l1.weight._arena.core, l2.weight._arena.core]
    return ops


def test_network_over_several_arenas_matches_the_module_path():
    X, y = _data()
    net, l1, l2 = _two_arena_net()
    assert len(net.arenas) == 2
    want = l2.forward(mc.ReLU().forward(l1.forward(X)))
    np.testing.assert_array_equal(net.predict(X, 30), want)
    # an optimizer over both layers' parameters (two arenas) trains through the network, as one
    # over a single-arena twin does
    opt = mc.SGD(l1.parameters() + l2.parameters(), lr=0.1, momentum=0.9)
    twin = mc.Sequential(mc.Linear(4, 6, seed=1), mc.ReLU(), mc.Linear(6, 3, seed=2))
    topt = mc.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for e in range(3):
        r = net.train_epoch(opt._core, CE, X, y, 8, True, e)
        t = twin.compiled().train_epoch(topt._core, CE, X, y, 8, True, e)
        assert r == t
    for p, q in zip(l1.parameters() + l2.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    # an optimizer over one of the arenas is accepted (the other layer frozen)
    before = l1.weight.data.copy()
    net.train_step(mc.SGD(l2.parameters(), lr=0.1)._core, CE, X[:8], y[:8])
    np.testing.assert_array_equal(l1.weight.data, before)


def test_several_arenas_must_agree_and_be_indexed():
    net, l1, l2 = _two_arena_net()
    ops = _ops(l1, l2)
    ops[2].arena = 2
    with pytest.raises(ValueError, match="arena 2"):
        _core.Network([l1.weight._arena.core, l2.weight._arena.core], ops, 4)
    f64 = mc.Linear(6, 3, seed=2, dtype=np.float64)
    ops[2].arena = 1
    with pytest.raises(ValueError, match="share one device and dtype"):
        _core.Network([l1.weight._arena.core, f64.weight._arena.core], ops, 4)
    with pytest.raises(TypeError, match="arenas"):
        _core.Network([l1.weight._arena.core, "not an arena"], ops, 4)
    single = _core.Network(l1.weight._arena.core, registry.LowerContext().lower(l1, 0), 4)  # not in a list
    assert single.out_features == 6


def test_validate_false_skips_value_scans_only():
    X, y = _data(8)
    model = _model()
    net = model.compiled()
    opt = _frozen(model.parameters())
    bad = X.copy()
    bad[3, 1] = np.nan
    for call in (lambda v, **kw: net.train_step(opt._core, CE, bad, y, False, validate=v, **kw),
                 lambda v, **kw: net.evaluate(CE, bad, y, 4, validate=v, **kw)):
        with pytest.raises(ValueError, match="NaN"):
            call(True)
        call(False)  # NaN passes through (the loss is NaN); no scan
    value, _ = net.evaluate(CE, bad, y, 4, validate=False)
    assert np.isnan(value)
    # dtype, shape and label range are still checked
    with pytest.raises(ValueError, match="columns"):
        net.train_step(opt._core, CE, X[:, :3], y, validate=False)
    with pytest.raises(TypeError):
        net.evaluate(CE, X.astype(np.int32), y, 4, validate=False)
    for call in (lambda yy: net.train_step(opt._core, CE, X, yy, validate=False),
                 lambda yy: net.evaluate(CE, X, yy, 4, validate=False)):
        with pytest.raises(ValueError, match="out of range"):
            call(np.where(np.arange(8) == 5, 7, y).astype(np.int32))


# Recorded from the Python implementation of mlpcore.trainer.epoch_seed before it moved to C++.
EPOCH_SEEDS = [
    ((0, 0), 12035550249420947055),
    ((0, 1), 627405149472732430),
    ((1, 0), 6791897765849424158),
    ((42, 7), 1587005860896957696),
    ((2**64 - 1, 10**6), 13336330283179696231),
    ((-1, 3), 209967342931450243),
    ((2**70 + 5, 2), 2611768881034074630),
    ((123456789, -1), 1297058898398046339),
    ((7, 2**64 + 3), 7758145696617331093),
]


@pytest.mark.parametrize("args, want", EPOCH_SEEDS)
def test_epoch_seed_known_values(args, want):
    assert _core.epoch_seed(*args) == want
    assert mc.trainer.epoch_seed(*args) == want


def test_epoch_seed_takes_numpy_ints_and_drives_the_shuffle():
    assert _core.epoch_seed(np.int64(42), np.int32(7)) == 1587005860896957696
    X, y = _data(20)
    a, b = _model(), _model()
    oa, ob = mc.SGD(a.parameters(), lr=0.1), mc.SGD(b.parameters(), lr=0.1)
    a.compiled().train_epoch(oa._core, CE, X, y, 4, True, _core.epoch_seed(5, 2))
    order = _core.permutation(20, _core.epoch_seed(5, 2))
    b.compiled().train_epoch(ob._core, CE, X[order], y[order], 4, False, 0)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
