"""Regression tests for review findings in the Python package: stale cached compiled networks,
a module object used twice, Trainer resume with custom modules and Dropout, gradcheck on a list
of modules, the sklearn adapter's pickled learning rate."""

import numpy as np
import pytest

import mlpcore as mc


def _x(n=6, f=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(np.float32)


# ----- 1. Sequential.compiled() never returns a network over stale memory or values -----

def test_compiled_follows_layers_moved_by_another_sequential():
    l3, l4 = mc.Linear(4, 5, seed=1), mc.Linear(5, 3, seed=2)
    P = mc.Sequential(l3, mc.ReLU(), l4)
    P.compiled()
    Q = mc.Sequential(l3, mc.ReLU(), l4)  # moves l3, l4 into Q's arena
    l3.weight.data[...] = 0.25  # written into the new arena only
    x = _x()
    want = P.forward(x)
    np.testing.assert_allclose(P.compiled().forward(x), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(Q.compiled().forward(x), want, rtol=1e-6, atol=1e-6)


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


# ----- 2. a module object used twice is refused (its saved inputs would be overwritten) -----

def test_module_used_twice_in_sequential_is_refused():
    act = mc.Tanh()
    with pytest.raises(ValueError, match=r"same Tanh object is at position 1 and at position 3.*create a new one"):
        mc.Sequential(mc.Linear(4, 4, seed=1), act, mc.Linear(4, 4, seed=2), act, mc.Linear(4, 2, seed=3))
    # also when the second use is nested in a sub-module
    with pytest.raises(ValueError, match=r"same Tanh object is at position 1 and at position 2\.block\.1"):
        mc.Sequential(mc.Linear(4, 4, seed=1), act, mc.Residual(mc.Sequential(mc.Linear(4, 4, seed=2), act)))


def test_module_used_twice_in_residual_block_is_refused():
    class Twice(mc.Module):  # a custom block that applies one module object twice
        def __init__(self, m):
            self.first, self.second = m, m

        def forward(self, x):
            return self.second.forward(self.first.forward(x))

    with pytest.raises(ValueError, match=r"Residual: the same ReLU object is at position block.first and at position block.second"):
        mc.Residual(Twice(mc.ReLU()))


def test_shared_parameters_stay_allowed():
    enc = mc.Linear(4, 3, seed=1)
    model = mc.Sequential(enc, mc.Tanh(), mc.TiedLinear(enc, transpose=True), mc.Tanh())
    x = _x()
    out = model.forward(x)
    model.backward(np.ones_like(out))
    assert out.shape == (6, 4)


# ----- 3. Trainer resume: custom Python modules, and Dropout's RNG state -----

class _Cube(mc.Module):
    """A custom numpy module (not lowerable): y = x**3 / 4."""

    def forward(self, x):
        self._x = np.asarray(x)
        return self._x ** 3 / 4

    def backward(self, g):
        return g * 0.75 * self._x ** 2


def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5).astype(np.int64)


def _resume_matches_full_run(tmp_path, make, compiled):
    X, y = _blobs()

    def trainer(seed):
        m = make(seed)
        return mc.Trainer(m, optimizer=mc.Adam(m.parameters(), lr=0.01), batch_size=16, compiled=compiled)

    full = trainer(0)
    h_full = full.fit(X, y, epochs=4, seed=3, progress=False)
    path = tmp_path / "ck.safetensors"
    trainer(0).fit(X, y, epochs=2, seed=3, callbacks=[mc.callbacks.ModelCheckpoint(path, monitor="loss")],
                   progress=False)
    resumed = trainer(1)  # other weights and other dropout seeds: everything comes from the file
    h = resumed.fit(X, y, epochs=4, seed=3, resume_from=path, progress=False)
    assert h.epoch == [2, 3]
    assert h.history["loss"] == h_full.history["loss"][2:]
    for (name, p), (_, q) in zip(resumed.model.named_parameters(), full.model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_resume_with_a_custom_module(tmp_path):
    _resume_matches_full_run(
        tmp_path, lambda s: mc.Sequential(mc.Linear(4, 8, seed=s), _Cube(), mc.Linear(8, 3, seed=s + 7)), None)


@pytest.mark.parametrize("compiled", [None, False])
def test_resume_with_dropout_is_bit_exact(tmp_path, compiled):
    def make(s):
        return mc.Sequential(mc.Linear(4, 16, seed=s), mc.ReLU(), mc.Dropout(0.3, seed=10 + s),
                             mc.Residual(mc.Sequential(mc.Linear(16, 16, seed=s + 1), mc.Tanh(),
                                                       mc.Dropout(0.2, seed=20 + s))),
                             mc.Linear(16, 3, seed=s + 2))
    _resume_matches_full_run(tmp_path, make, compiled)


def test_resume_with_dropout_inside_a_custom_model(tmp_path):
    _resume_matches_full_run(
        tmp_path, lambda s: mc.Sequential(mc.Linear(4, 8, seed=s), _Cube(), mc.Dropout(0.25, seed=5 + s),
                                          mc.Linear(8, 3, seed=s + 7)), None)


def test_resume_without_optimizer_state_leaves_the_model_alone(tmp_path):
    m = mc.Sequential(mc.Linear(4, 3, seed=0))
    path = tmp_path / "w.safetensors"
    mc.save(m, path, epoch=1)
    other = mc.Sequential(mc.Linear(4, 3, seed=1))
    before = other[0].weight.data.copy()
    X, y = _blobs(16)
    with pytest.raises(ValueError, match="no optimizer state"):
        mc.Trainer(other).fit(X, y, epochs=2, resume_from=path, progress=False)
    np.testing.assert_array_equal(other[0].weight.data, before)


# ----- 4. gradcheck on a list of modules leaves their parameters where they are -----

def test_gradcheck_on_a_list_keeps_the_callers_optimizer_working():
    l1, act, l2 = mc.Linear(3, 4, dtype=np.float64, seed=1), mc.Tanh(), mc.Linear(4, 2, dtype=np.float64, seed=2)
    model = mc.Sequential(l1, act, l2)
    opt = mc.SGD(model.parameters(), lr=0.1)
    arena = l1.weight._arena
    x = np.random.default_rng(0).standard_normal((5, 3))
    report = mc.gradcheck([l1, act, l2], x)
    assert set(report) == {"input", "0.weight", "0.bias", "2.weight", "2.bias"}
    assert max(report.values()) < 1e-6
    assert l1.weight._arena is arena and l2.weight._arena is arena
    model.zero_grad()
    model.backward(np.ones_like(model.forward(x)))
    before = l2.bias.data.copy()
    opt.step()  # refused before the fix: the parameters had moved into gradcheck's Sequential
    np.testing.assert_allclose(l2.bias.data, before - 0.1 * 5)
    with pytest.raises(ValueError, match="same Tanh object"):
        mc.gradcheck([l1, act, mc.Linear(2, 4, dtype=np.float64), act], x)


# ----- 5. the sklearn adapter keeps its adapted learning rate through pickling -----

@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_sklearn_unpickle_keeps_the_adapted_learning_rate(schedule):
    pytest.importorskip("sklearn")
    import pickle
    import warnings

    from mlpcore.sklearn import MLPClassifier

    X, y = _blobs(80, seed=1)
    clf = MLPClassifier(hidden_layer_sizes=(6,), solver="sgd", learning_rate=schedule, learning_rate_init=0.1,
                        tol=1e9, n_iter_no_change=1, max_iter=6, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is reached on purpose
        clf.fit(X, y)
    assert clf._learning_rate < 0.1  # adapted during fit
    copy = pickle.loads(pickle.dumps(clf))
    assert copy._learning_rate == clf._learning_rate
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)  # the next epoch steps with the adapted rate on both
    for a, b in zip(clf.coefs_, copy.coefs_):
        np.testing.assert_array_equal(a, b)


# ----- 6. fit sets train mode once, not once per epoch (Module.train walks the tree) -----

@pytest.mark.parametrize("compiled", [None, False])
def test_fit_sets_train_mode_once_and_after_a_callback_switched_to_eval(compiled):
    model = mc.Sequential(mc.Linear(4, 8, seed=0), mc.ReLU(), mc.Dropout(0.5, seed=1), mc.Linear(8, 3, seed=2))
    calls = []
    train = model.train

    def counting_train(mode=True):
        calls.append(mode)
        return train(mode)

    model.train = counting_train  # instance attribute: counts fit's calls
    X, y = _blobs(32)
    mc.Trainer(model, batch_size=8, compiled=compiled).fit(X, y, epochs=5, progress=False)
    assert calls == [True, True]  # before the loop, and restoring the mode at the end

    class EvalAtEpochEnd(mc.callbacks.Callback):
        seen: list = []

        def on_epoch_end(self, epoch, logs=None):
            self.trainer.model.eval()

        def on_batch_begin(self, batch, logs=None):
            m = self.trainer.model
            net = m.compiled() if compiled is None else None
            self.seen.append((m.training, m[2].training, True if net is None else net.training))

    cb = EvalAtEpochEnd()
    model.eval()
    calls.clear()
    mc.Trainer(model, batch_size=8, compiled=compiled).fit(X, y, epochs=3, callbacks=[cb], progress=False)
    assert cb.seen and all(s == (True, True, True) for s in cb.seen)  # every epoch trains in train mode
    assert not model.training and not model[2].training  # the mode fit found is restored
