"""pickle and copy.deepcopy of every module, Sequential and optimizer: weights, gradients,
optimizer state, Dropout RNG counters, train / eval modes and tied weights survive; a deep copy
trains without touching the original; a Trainer holding them pickles attribute by attribute."""

import copy
import pickle

import numpy as np
import pytest

import mlpcore as mc

F64 = np.float64


def _every_module_model():
    enc = mc.Linear(6, 4, dtype=F64, seed=3)
    return mc.Sequential(
        mc.Linear(5, 6, dtype=F64, seed=1), mc.LeakyReLU(0.2),
        mc.Residual(mc.Sequential(mc.Linear(6, 6, dtype=F64, seed=2), mc.ELU(0.7),
                                  mc.Dropout(0.25, seed=11))),
        enc, mc.GELU(), mc.TiedLinear(enc, transpose=True), mc.SiLU(),
        mc.Maxout(6, 4, pieces=3, dtype=F64, seed=4), mc.Tanh(),
        mc.Linear(4, 4, bias=False, dtype=F64, seed=5),
        mc.Sigmoid(), mc.Identity(), mc.Linear(4, 3, dtype=F64, seed=6), mc.Softmax(),
    )


def _x(n=7, f=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f))


COPIES = {"pickle": lambda obj: pickle.loads(pickle.dumps(obj)), "deepcopy": copy.deepcopy}


@pytest.mark.parametrize("how", list(COPIES))
def test_every_module_round_trips(how):
    model = _every_module_model()
    x = _x()
    model(x)
    model.backward(np.ones((7, 3)))  # gradients and a dropout draw to carry over
    model[2].block[2].eval()  # a mixed mode to keep
    twin = COPIES[how](model)
    assert [type(m) for m in twin.modules()] == [type(m) for m in model.modules()]
    for (n, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=n)
    assert twin[5].weight is twin[3].weight  # tied weights stay tied
    assert twin[2].block[2]._state.counter == model[2].block[2]._state.counter > 0
    assert twin[2].block[2]._state.seed == 11 and twin[2].block[2].p == 0.25
    assert [m.training for m in twin.modules()] == [m.training for m in model.modules()]
    assert twin[1].negative_slope == pytest.approx(0.2) and twin[7].pieces == 3
    assert len({id(p._arena) for p in twin.parameters()}) == 1  # one flat arena, as the original
    model.eval()
    twin.eval()
    np.testing.assert_array_equal(twin(x), model(x))
    np.testing.assert_array_equal(twin.compiled().predict(x), model.compiled().predict(x))


@pytest.mark.parametrize("make", [
    lambda: mc.Linear(3, 2, dtype=F64, seed=0), mc.ReLU, lambda: mc.LeakyReLU(0.3), lambda: mc.ELU(0.5),
    lambda: mc.Dropout(0.4, seed=2), lambda: mc.Maxout(3, 2, dtype=F64, seed=0),
    lambda: mc.Residual(mc.Linear(3, 3, dtype=F64, seed=0)),
], ids=["Linear", "ReLU", "LeakyReLU", "ELU", "Dropout", "Maxout", "Residual"])
@pytest.mark.parametrize("how", list(COPIES))
def test_single_modules_round_trip(make, how):
    m = make()
    twin = COPIES[how](m)
    assert repr(twin) == repr(m)
    x = _x(4, 3)
    np.testing.assert_array_equal(twin(x), m(x))  # Dropout: the same counter, the same mask


@pytest.mark.parametrize("opt_cls", [mc.SGD, mc.Adam, mc.AdamW, mc.RMSprop])
@pytest.mark.parametrize("how", list(COPIES))
def test_model_and_optimizer_copied_together_train_identically(opt_cls, how):
    kw = {"momentum": 0.9} if opt_cls is not mc.Adam and opt_cls is not mc.AdamW else {}
    model = mc.Sequential(mc.Linear(5, 8, dtype=F64, seed=0), mc.ReLU(), mc.Dropout(0.2, seed=4),
                          mc.Linear(8, 3, dtype=F64, seed=1))
    opt = opt_cls(model.parameters(), lr=0.01, **kw)
    loss = mc.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((8, 5)), rng.integers(0, 3, 8)) for _ in range(6)]

    def step(m, o, x, y):
        o.zero_grad()
        loss(m(x), y)
        m.backward(loss.backward())
        o.step()

    for x, y in data[:3]:
        step(model, opt, x, y)
    model2, opt2 = COPIES[how]((model, opt))
    assert opt2.params[0] is model2.parameters()[0]  # the copy's optimizer steps the copy's parameters
    assert opt2.step_count == 3 and opt2.lr == opt.lr
    before = [p.data.copy() for p in model.parameters()]
    for x, y in data[3:]:
        step(model2, opt2, x, y)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)  # the original did not move
    for x, y in data[3:]:
        step(model, opt, x, y)
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    np.testing.assert_array_equal(opt.state_dict()["state"], opt2.state_dict()["state"])


def test_deep_copy_trains_without_touching_the_original():
    model = mc.Sequential(mc.Linear(4, 6, dtype=F64, seed=0), mc.Tanh(), mc.Linear(6, 2, dtype=F64, seed=1))
    keep = [p.data.copy() for p in model.parameters()]
    twin = copy.deepcopy(model)
    opt = mc.SGD(twin.parameters(), lr=0.5)
    for _ in range(3):
        twin.zero_grad()
        twin(_x(5, 4))
        twin.backward(np.ones((5, 2)))
        opt.step()
    for p, k, q in zip(model.parameters(), keep, twin.parameters()):
        np.testing.assert_array_equal(p.data, k)
        np.testing.assert_array_equal(p.grad, 0.0)
        assert not np.array_equal(q.data, k)


def test_a_trainer_holding_them_pickles():
    model = mc.Sequential(mc.Linear(4, 6, seed=0), mc.ReLU(), mc.Dropout(0.1, seed=0),
                          mc.Linear(6, 3, seed=1))
    tr = mc.Trainer(model, optimizer=mc.Adam(model.parameters(), lr=0.01), batch_size=8)
    tr2 = pickle.loads(pickle.dumps(tr))
    assert tr2.optimizer.params[0] is tr2.model.parameters()[0]
    x = _x(5, 4).astype(np.float32)
    np.testing.assert_array_equal(tr2.predict(x), tr.predict(x))
