"""Eval-mode inference and ``no_grad``.

- eval-mode ``model(x)`` runs the compiled network (one call; the same numbers as module by
  module), keeping what a backward needs: a backward after it is correct (gradcheck does this);
- under ``mc.no_grad()`` it is the pure batched predict, nothing is kept and backward raises;
- ``mlpcore.nn.inference.predict`` is the one eval-mode predict path, for any model.
"""

import threading

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.nn.inference import EVAL_BATCH, predict

F64 = np.float64


def _x(n=6, f=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f))


def _model():
    return mc.Sequential(mc.Linear(4, 16, dtype=F64, seed=0), mc.GELU(), mc.Dropout(0.3, seed=1),
                         mc.Residual(mc.Sequential(mc.Linear(16, 16, dtype=F64, seed=2), mc.Tanh())),
                         mc.Maxout(16, 5, pieces=3, dtype=F64, seed=3), mc.Linear(5, 3, dtype=F64, seed=4))


class Square(mc.Module):
    _passthrough = True

    def forward(self, x):
        self.x = np.asarray(x, dtype=np.float64)
        return self.x ** 2

    def backward(self, grad_output):
        return 2.0 * self.x * grad_output


def test_eval_call_is_the_network_and_matches_module_path():
    model = _model().eval()
    x = _x()
    out = model(x)
    assert model.__dict__["_path"][1] is model._network()
    np.testing.assert_array_equal(out, model._forward_modules(x))
    np.testing.assert_array_equal(out, model._network().predict(x))
    assert model[2]._state.counter == 0  # eval: dropout drew nothing


def test_backward_after_an_eval_forward_is_correct():
    model, twin = _model().eval(), _model().eval()
    x, g = _x(), _x(6, 3, seed=1)
    model.zero_grad()
    twin.zero_grad()
    model(x)
    gx = model.backward(g)
    twin._forward_modules(x)
    np.testing.assert_array_equal(gx, twin._backward_modules(g))
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)
    report = mc.gradcheck(model, x)  # forward / backward through the network, eval mode
    assert max(report.values()) < 1e-6, report
    assert model.training is False


def test_no_grad_is_a_pure_predict_and_backward_raises():
    model = _model().eval()
    x = _x(3000)  # more rows than one predict batch
    with mc.no_grad():
        assert not mc.nn.is_grad_enabled()
        out = model(x)
    assert mc.nn.is_grad_enabled()
    np.testing.assert_array_equal(out, model._network().predict(x))
    assert x.shape[0] > EVAL_BATCH
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(out))
    model(x[:4])  # outside no_grad the forward keeps its state again
    model.backward(np.ones((4, 3)))


@pytest.mark.parametrize("make", [
    lambda: mc.Linear(4, 3, dtype=F64, seed=0), mc.ReLU, lambda: mc.Dropout(0.5, seed=0),
    lambda: mc.Maxout(4, 2, dtype=F64, seed=0), lambda: mc.Residual(mc.Linear(4, 4, dtype=F64, seed=0)),
    lambda: mc.Sequential(mc.Linear(4, 4, dtype=F64, seed=0), Square()),
], ids=["Linear", "ReLU", "Dropout", "Maxout", "Residual", "custom-Sequential"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_no_grad_leaves_nothing_for_backward_in_every_module(make, mode):
    m = make().train(mode == "train")
    x = _x()
    with mc.no_grad():
        out = m(x)
    with pytest.raises(RuntimeError, match="no_grad|before forward"):
        m.backward(np.ones_like(out))


def test_no_grad_in_train_mode_still_draws_dropout():
    model = _model()
    with mc.no_grad():
        a = model(_x())
        b = model(_x())
    assert not np.array_equal(a, b) and model[2]._state.counter == 2 * 6 * 16


def test_no_grad_nests_decorates_and_is_per_thread():
    seen = []

    @mc.no_grad()
    def inner():
        seen.append(mc.nn.is_grad_enabled())
        t = threading.Thread(target=lambda: seen.append(mc.nn.is_grad_enabled()))
        t.start()
        t.join()

    with mc.no_grad():
        with mc.no_grad():
            pass
        seen.append(mc.nn.is_grad_enabled())
        inner()
        seen.append(mc.nn.is_grad_enabled())
    seen.append(mc.nn.is_grad_enabled())
    assert seen == [False, False, True, False, True]


def test_predict_of_a_custom_model_restores_every_mode():
    model = mc.Sequential(mc.Linear(4, 8, dtype=F64, seed=0), Square(), mc.Dropout(0.5, seed=0),
                          mc.Linear(8, 2, dtype=F64, seed=1))
    assert model._network() is None
    model[2].eval()  # mixed modes, kept as they are
    x = _x(50)
    out = predict(model, x, batch_size=10)  # no 1-row batch: GEMV may differ in the last bit
    want = model.eval()._forward_modules(x)
    np.testing.assert_array_equal(out, want)
    model.train()
    model[2].eval()
    predict(model, x)
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    assert model[2]._state.counter == 0
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, x, batch_size=0)


def test_predict_batches_give_the_model_dtype_and_shape():
    model = _model()
    x = _x(10).astype(np.float32)
    out = predict(model, x, batch_size=3)
    assert out.dtype == np.float64 and out.shape == (10, 3)
    np.testing.assert_allclose(out, predict(model, x), rtol=1e-13)
    assert model.training  # predict does not change the mode


@pytest.mark.skipif(not mc.cuda_available(), reason="needs a CUDA device")
def test_eval_call_on_cuda_runs_the_network():
    cpu = mc.Sequential(mc.Linear(4, 16, seed=0), mc.ReLU(), mc.Dropout(0.3, seed=1),
                        mc.Linear(16, 3, seed=2)).eval()
    dev = mc.Sequential(mc.Linear(4, 16, seed=0), mc.ReLU(), mc.Dropout(0.3, seed=1),
                        mc.Linear(16, 3, seed=2)).eval().to("cuda")
    x = _x().astype(np.float32)
    np.testing.assert_allclose(dev(x), cpu(x), rtol=1e-5, atol=1e-6)
    with mc.no_grad():
        np.testing.assert_allclose(dev(x), cpu(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict(dev, x), cpu(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="CPU"):
        dev._forward_modules(x)  # the module path is CPU only


@pytest.fixture
def batch_invariant():
    before = mc.get_batch_invariant()
    mc.set_batch_invariant(True)
    yield
    mc.set_batch_invariant(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_invariant_eval_calls_and_predict(batch_invariant, dtype):
    """mc.set_batch_invariant(True) (re-exported from the core): every row of eval-mode model(x),
    of the no_grad predict and of inference.predict is bitwise the row computed alone."""
    model = mc.Sequential(mc.Linear(4, 32, dtype=dtype, seed=0), mc.ReLU(),
                          mc.Linear(32, 3, dtype=dtype, seed=1))
    model.eval()
    x = _x(9).astype(dtype)
    alone = np.vstack([model(x[i:i + 1]) for i in range(9)])
    np.testing.assert_array_equal(model(x), alone)
    with mc.no_grad():
        np.testing.assert_array_equal(model(x), alone)
    np.testing.assert_array_equal(predict(model, x, batch_size=4), alone)


def test_predict_can_switch_batch_invariance_for_one_call():
    model = mc.Sequential(mc.Linear(4, 32, seed=0), mc.ReLU(), mc.Linear(32, 3, seed=1))
    x = _x(9).astype(np.float32)
    before = mc.get_batch_invariant()
    out = predict(model, x, batch_size=4, batch_invariant=True)
    assert mc.get_batch_invariant() == before  # restored
    np.testing.assert_array_equal(out, np.vstack([predict(model, x[i:i + 1], batch_invariant=True)
                                                  for i in range(9)]))
