"""Python -> C++ crossings on the hot paths, counted exactly (helpers.CrossingCounter: calls into
mlpcore._core, its constructors and its property reads / writes). A new crossing on one of these
paths makes its test fail: metadata (device, dtype, parameter lists, modes) is known in Python,
not asked of C++, and the compiled network does a whole forward or backward in one call."""

import numpy as np
import pytest
from helpers import CrossingCounter

import mlpcore as mc


def _mlp():
    return mc.Sequential(mc.Linear(2, 16, seed=0), mc.ReLU(), mc.Linear(16, 16, seed=1), mc.ReLU(),
                         mc.Linear(16, 2, seed=2))


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2)).astype(np.float32), rng.integers(0, 2, n)


def _crossings(fn) -> list:
    fn()  # warm: the first call builds the network
    with CrossingCounter() as c:
        fn()
    return c.calls


def test_pytorch_style_step_is_five_crossings():
    """zero_grad (one fill of the one arena), forward, loss value + gradient, backward, step."""
    model, (x, y) = _mlp(), _data()
    opt, loss = mc.SGD(model.parameters(), lr=0.01, momentum=0.9), mc.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()

    assert _crossings(step) == ["zero_grad", "forward", "loss_forward_backward", "backward", "step"]


def test_module_zero_grad_and_metadata_reads_are_free():
    model = _mlp()
    calls = _crossings(lambda: (model.zero_grad(), model.parameters(), model.device, model.dtype,
                                model.train(), model.eval(), model.train(), model.training))
    assert calls == ["zero_grad"], calls


def test_eval_mode_call_is_one_crossing():
    model, (x, _) = _mlp(), _data(1)
    model.eval()
    assert _crossings(lambda: model(x)) == ["forward"]

    def pure():
        with mc.no_grad():
            model(x)

    assert _crossings(pure) == ["predict"]
    assert _crossings(lambda: mc.nn.inference.predict(model, x)) == ["predict"]


def test_compiled_is_free_when_nothing_changed():
    model = _mlp()
    assert _crossings(model.compiled) == []
    mc.Sequential(mc.Linear(3, 3, seed=0))  # building another model does not invalidate this one
    assert _crossings(model.compiled) == []


@pytest.mark.parametrize("n_arenas", [1, 2])
def test_zero_grad_is_one_fill_per_arena(n_arenas):
    layers = [mc.Linear(2, 16, seed=0), mc.Linear(16, 2, seed=1)]
    if n_arenas == 2:
        layers[0].weight.data  # a view handed out pins the first layer's arena: it stays
    model = mc.Sequential(layers[0], mc.ReLU(), layers[1])
    assert _crossings(model.zero_grad) == ["zero_grad"] * n_arenas
    opt = mc.SGD(model.parameters(), lr=0.1)
    assert _crossings(opt.zero_grad) == ["zero_grad"] * n_arenas
    assert _crossings(opt.step) == ["step"]
