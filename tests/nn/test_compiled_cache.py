"""Sequential.compiled() never returns a network over stale memory or values, and is reused
(one int compare of the model's version) when nothing it uses changed."""

import numpy as np
import pytest

import mlpcore as mc


def _x(n=6, f=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(np.float32)


@pytest.mark.parametrize("hand_out", [True, False])
def test_two_sequentials_over_the_same_layers_agree(hand_out):
    """Q over P's layers shares P's arena (pinned when P's network was handed out, and holding
    nothing but Q's parameters anyway): nothing moves, both networks stay valid and see the writes.
    (A move that a network must follow: parity/test_paths.py, wrapping tests.)"""
    l3, l4 = mc.Linear(4, 5, seed=1), mc.Linear(5, 3, seed=2)
    P = mc.Sequential(l3, mc.ReLU(), l4)
    net = P.compiled() if hand_out else P._network()
    Q = mc.Sequential(l3, mc.ReLU(), l4)
    assert P._network() is net and Q.parameters()[0]._arena is P.parameters()[0]._arena
    l3.weight.data[...] = 0.25
    x = _x()
    want = P._forward_modules(x)
    np.testing.assert_allclose(P.compiled().forward(x), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(Q.compiled().forward(x), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(P(x), want, rtol=1e-6, atol=1e-6)


def test_compiled_is_reused_when_nothing_it_uses_changed():
    P = mc.Sequential(mc.Linear(4, 5, seed=1), mc.ReLU(), mc.Linear(5, 3, seed=2))
    net = P.compiled()
    assert P.compiled() is net
    mc.Sequential(mc.Linear(4, 4, seed=3))  # an unrelated model moves its own parameters
    mc.LeakyReLU(0.1).negative_slope = 0.2  # an unrelated hyper-parameter changes
    assert P.compiled() is net
    P.eval()
    assert P.compiled() is net and not net.training
    P.train()
    assert net.training


@pytest.mark.parametrize("make, attr, value", [
    (lambda: mc.LeakyReLU(0.01), "negative_slope", 0.3),
    (lambda: mc.ELU(1.0), "alpha", 0.2),
])
def test_compiled_follows_activation_parameter(make, attr, value):
    act = make()
    model = mc.Sequential(mc.Linear(4, 5, seed=1), act, mc.Linear(5, 3, seed=2))
    model.compiled()
    setattr(act, attr, value)
    assert getattr(act, attr) == value and act.param == value
    x = _x() * 3
    np.testing.assert_allclose(model.compiled().forward(x), model.forward(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=attr):
        setattr(act, attr, float("nan"))


def test_compiled_follows_dropout_p():
    drop = mc.Dropout(0.5, seed=3)
    model = mc.Sequential(mc.Linear(4, 5, seed=1), drop, mc.Linear(5, 3, seed=2))
    model.compiled()
    drop.p = 0.0  # train mode, p = 0: the identity on both paths
    x = _x()
    np.testing.assert_allclose(model.compiled().forward(x), model.forward(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="p: expected a probability"):
        drop.p = 1.0


@pytest.mark.skipif(not mc._core.cuda_available(), reason="needs a CUDA device")
def test_compiled_follows_child_moved_to_another_device():
    inner = mc.Sequential(mc.Linear(4, 5, seed=1))
    model = mc.Sequential(inner, mc.ReLU(), mc.Linear(5, 3, seed=2))
    assert model.compiled() is not None
    inner.to("cuda")  # the parameters now span two arenas: no single compiled network
    assert model.compiled() is None
