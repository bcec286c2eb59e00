"""Trainer resume: custom Python modules, Dropout's RNG state, and a checkpoint without optimizer
state (refused before any weight is written)."""

import numpy as np
import pytest

import mlpcore as mc


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
    h_full = full.fit(X, y, epochs=4, seed=3, verbose=0)
    path = tmp_path / "ck.safetensors"
    trainer(0).fit(X, y, epochs=2, seed=3, callbacks=[mc.callbacks.ModelCheckpoint(path, monitor="loss")],
                   verbose=0)
    resumed = trainer(1)  # other weights and other dropout seeds: everything comes from the file
    h = resumed.fit(X, y, epochs=4, seed=3, resume_from=path, verbose=0)
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
        mc.Trainer(other).fit(X, y, epochs=2, resume_from=path, verbose=0)
    np.testing.assert_array_equal(other[0].weight.data, before)


@pytest.mark.parametrize("compiled", [None, False])
def test_resume_with_batch_norm_is_bit_exact(tmp_path, compiled):
    """The running statistics (and num_batches_tracked) come back from the checkpoint: the resumed
    run's weights, buffers and losses equal the uninterrupted run's bit for bit."""
    def make(s):
        return mc.Sequential(mc.Linear(4, 16, bias=False, seed=s), mc.BatchNorm1d(16), mc.ReLU(),
                             mc.Dropout(0.2, seed=10 + s), mc.Linear(16, 16, seed=s + 1),
                             mc.BatchNorm1d(16, momentum=None), mc.LayerNorm(16), mc.Linear(16, 3, seed=s + 2))
    _resume_matches_full_run(tmp_path, make, compiled)
    X, y = _blobs()
    full, part = make(0), make(0)
    mc.Trainer(full, batch_size=16, compiled=compiled).fit(X, y, epochs=3, seed=1, verbose=0)
    path = tmp_path / "bn.safetensors"
    mc.Trainer(part, batch_size=16, compiled=compiled).fit(
        X, y, epochs=1, seed=1, callbacks=[mc.callbacks.ModelCheckpoint(path, monitor="loss")], verbose=0)
    resumed = make(5)
    mc.Trainer(resumed, batch_size=16, compiled=compiled).fit(X, y, epochs=3, seed=1, resume_from=path,
                                                              verbose=0)
    got, want = resumed.state_dict(), full.state_dict()
    assert int(got["1.num_batches_tracked"]) == 12
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
