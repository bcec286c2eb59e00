"""A Trainer pickles and deep-copies with its model, optimizer and History; a copy trains on its
own. Model and optimizer pickling belong to the model side (nn / optim): until that is in this
build, the tests that need it skip and say so."""

import copy
import pickle

import numpy as np
import pytest

import mlpcore as mc


def _model_side_pickles() -> bool:
    try:
        m = mc.Sequential(mc.Linear(2, 2, seed=0))
        pickle.loads(pickle.dumps((m, mc.Adam(m.parameters()))))
    except Exception:  # noqa: BLE001 - any failure means: not supported by this build yet
        return False
    return True


needs_model_pickling = pytest.mark.skipif(
    not _model_side_pickles(), reason="Module / Optimizer pickling comes with the model side (nn, optim); "
                                      "these tests run once it is merged")


def blobs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)


class NumpyTanh(mc.Module):
    def forward(self, x):
        self._y = np.tanh(x)
        return self._y

    def backward(self, g):
        return g * (1.0 - self._y ** 2)


def make_trainer(compiled=None, custom=False):
    mid = NumpyTanh() if custom else mc.Tanh()
    m = mc.Sequential(mc.Linear(3, 8, seed=0), mid, mc.Dropout(0.2, seed=4), mc.Linear(8, 3, seed=1))
    return mc.Trainer(m, optimizer=mc.Adam(m.parameters(), lr=0.01), batch_size=16, compiled=compiled)


def weights(model):
    return [p.data.copy() for p in model.parameters()]


def test_history_pickles_as_its_numbers():
    X, y = blobs()
    tr = make_trainer()
    h = tr.fit(X, y, epochs=2, validation_split=0.25, verbose=0)
    h2 = pickle.loads(pickle.dumps(h))
    assert h2.history == h.history and h2.epoch == h.epoch and h2.params == h.params
    assert h2.trainer is None and h2.model is None  # not the whole training setup
    assert h.trainer is tr  # the original keeps its trainer
    assert copy.deepcopy(h).history == h.history


@needs_model_pickling
@pytest.mark.parametrize("compiled,custom", [(None, False), (False, False), (None, True)])
def test_deepcopy_trains_without_touching_the_original(compiled, custom):
    X, y = blobs()
    tr = make_trainer(compiled, custom)
    tr.fit(X, y, epochs=2, verbose=0)
    before = weights(tr.model)
    step = tr.optimizer.step_count
    twin = copy.deepcopy(tr)
    assert twin.model is not tr.model and twin.optimizer is not tr.optimizer
    assert [id(p) for p in twin.optimizer.params] == [id(p) for p in twin.model.parameters()]
    twin.fit(X, y, epochs=3, seed=1, verbose=0)
    twin.train_on_batch(X, y)
    for a, b in zip(weights(tr.model), before):
        np.testing.assert_array_equal(a, b)
    assert tr.optimizer.step_count == step
    assert not all(np.array_equal(a, b) for a, b in zip(weights(twin.model), before))
    # the original and a fresh copy of it continue identically
    again = copy.deepcopy(tr)
    tr.fit(X, y, epochs=2, seed=5, verbose=0)
    again.fit(X, y, epochs=2, seed=5, verbose=0)
    for a, b in zip(weights(tr.model), weights(again.model)):
        np.testing.assert_array_equal(a, b)


@needs_model_pickling
@pytest.mark.parametrize("compiled", [None, False])
def test_pickle_round_trip_continues_identically(compiled):
    X, y = blobs()
    tr = make_trainer(compiled)
    h = tr.fit(X, y, epochs=2, verbose=0)
    tr2 = pickle.loads(pickle.dumps(tr))
    np.testing.assert_array_equal(tr2.predict(X), tr.predict(X))
    assert tr2.history.history == h.history and tr2.batch_size == tr.batch_size
    assert tr2.optimizer.step_count == tr.optimizer.step_count and tr2.base_lr == tr.base_lr
    for t in (tr, tr2):
        t.fit(X, y, epochs=2, seed=9, verbose=0)
    for a, b in zip(weights(tr.model), weights(tr2.model)):
        np.testing.assert_array_equal(a, b)
