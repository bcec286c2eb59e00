"""fit sets train mode once, not once per epoch (Module.train walks the tree), and trains in
train mode after a callback switched the model to eval."""

import numpy as np
import pytest

import mlpcore as mc


def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5).astype(np.int64)


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
    mc.Trainer(model, batch_size=8, compiled=compiled).fit(X, y, epochs=5, verbose=0)
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
    mc.Trainer(model, batch_size=8, compiled=compiled).fit(X, y, epochs=3, callbacks=[cb], verbose=0)
    assert cb.seen and all(s == (True, True, True) for s in cb.seen)  # every epoch trains in train mode
    assert not model.training and not model[2].training  # the mode fit found is restored
