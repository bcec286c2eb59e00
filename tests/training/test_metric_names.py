"""Trainer(metrics=[...]): each named metric equals sklearn.metrics on the same predictions
(binary, multi-class macro, multi-label), callables, History and callback logs (val_ too),
running training values from the epoch's own training outputs (no second forward pass), and the
errors for unknown or misplaced names."""

import mlpcore as mc
import numpy as np
import pytest
from mlpcore.training import metrics as M

skm = pytest.importorskip("sklearn.metrics")

CE, BCE, MSE = mc.CrossEntropyLoss().kind, mc.BCEWithLogitsLoss().kind, mc.MSELoss().kind


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("seed", range(3))
def test_cross_entropy_metrics_equal_sklearn(classes, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, 200)
    out = rng.standard_normal((200, classes)) + np.eye(classes)[y] * 0.8
    out[:5] = out[5:10]  # ties in the scores
    pred, prob = out.argmax(1), _softmax(out)
    avg = "binary" if classes == 2 else "macro"
    got = M.compute(CE, M.resolve(["accuracy", "precision", "recall", "f1", "roc_auc"], CE), out, y)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-15)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average=avg), abs=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average=avg), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average=avg), abs=1e-12)
    want_auc = skm.roc_auc_score(y, prob[:, 1]) if classes == 2 else skm.roc_auc_score(y, prob, multi_class="ovr")
    assert got["roc_auc"] == pytest.approx(want_auc, abs=1e-12)


def test_macro_average_counts_only_the_classes_present_as_sklearn():
    y = np.array([0, 0, 1, 1, 2, 2])
    out = np.eye(5)[[0, 1, 1, 1, 4, 2]]  # class 3 nowhere, class 4 only predicted
    got = M.precision_recall_f1(CE, out, y)
    pred = out.argmax(1)
    for k, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[k] == pytest.approx(fn(y, pred, average="macro", zero_division=0), abs=1e-12)


@pytest.mark.parametrize("outputs", [1, 3])
def test_bce_metrics_equal_sklearn(outputs):
    rng = np.random.default_rng(4)
    y = (rng.uniform(size=(150, outputs)) > 0.4).astype(np.float64)
    out = rng.standard_normal((150, outputs)) + (y - 0.5)
    got = M.compute(BCE, M.resolve(["accuracy", "precision", "recall", "f1", "roc_auc"], BCE), out, y)
    pred = (out > 0).astype(int)
    if outputs == 1:
        yt, pt = y[:, 0], pred[:, 0]
        assert got["f1"] == pytest.approx(skm.f1_score(yt, pt), abs=1e-12)
        assert got["precision"] == pytest.approx(skm.precision_score(yt, pt), abs=1e-12)
        assert got["recall"] == pytest.approx(skm.recall_score(yt, pt), abs=1e-12)
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yt, out[:, 0]), abs=1e-12)
    else:
        assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-12)
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"), abs=1e-12)
        assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"), abs=1e-12)
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, out, average="macro"), abs=1e-12)
    assert got["accuracy"] == pytest.approx(float(np.mean(pred == y)), abs=1e-15)


def test_regression_metrics_and_callables_equal_sklearn():
    rng = np.random.default_rng(5)
    y, out = rng.standard_normal((60, 2)), rng.standard_normal((60, 2))

    def max_error(y_true, pred):
        return float(np.max(np.abs(y_true - pred)))

    got = M.compute(MSE, M.resolve(["mse", "mae", "r2", max_error], MSE), out, y)
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y, out), rel=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, out), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, out), rel=1e-12)
    assert got["max_error"] == max_error(y, out)


def test_bad_metrics_are_refused_at_construction():
    model = mc.Sequential(mc.Linear(3, 2))
    with pytest.raises(ValueError, match="unknown metric 'f2'"):
        mc.Trainer(model, metrics=["f2"])
    with pytest.raises(ValueError, match="classification metric"):
        mc.Trainer(model, loss=mc.MSELoss(), metrics=["roc_auc"])
    with pytest.raises(ValueError, match="regression metric"):
        mc.Trainer(model, metrics=["r2"])
    with pytest.raises(ValueError, match="twice"):
        mc.Trainer(model, metrics=["f1", "f1"])
    with pytest.raises(TypeError, match="metrics"):
        mc.Trainer(model, metrics=[3])


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


@pytest.mark.parametrize("compiled", [None, False])
def test_history_and_callbacks_carry_the_metrics(compiled):
    X, y = _blobs()
    seen = []

    class Spy(mc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs))

    model = mc.Sequential(mc.Linear(4, 8, seed=1), mc.BatchNorm1d(8), mc.ReLU(), mc.Linear(8, 2, seed=2))
    names = ["accuracy", "f1", "precision", "recall", "roc_auc"]
    trainer = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=32, metrics=names,
                         compiled=compiled)
    h = trainer.fit(X, y, epochs=2, validation_split=0.25, callbacks=[Spy()], verbose=0)
    keys = ["loss"] + names + ["val_loss"] + ["val_" + n for n in names]
    assert list(h.history) == keys and list(seen[-1]) == keys
    Xv, yv = X[90:], y[90:]
    ev = trainer.evaluate(Xv, yv)
    assert list(ev) == ["loss"] + names
    assert ev["f1"] == pytest.approx(h.history["val_f1"][-1], abs=1e-12)
    out = trainer.predict(Xv)
    assert ev["roc_auc"] == pytest.approx(skm.roc_auc_score(yv, _softmax(out.astype(np.float64))[:, 1]), abs=1e-6)
    assert ev["f1"] == pytest.approx(skm.f1_score(yv, out.argmax(1)), abs=1e-12)


def test_running_training_metrics_come_from_the_training_forward_passes():
    """The compiled epoch hands back each batch's train-mode outputs (before its update): the
    running metrics equal sklearn on outputs recorded by the same loop run batch by batch, and
    fit runs one eval-mode predict per epoch (the validation set), none for training."""
    X, y = _blobs(96)
    def make():
        return mc.Sequential(mc.Linear(4, 8, seed=1, dtype=np.float64), mc.BatchNorm1d(8, dtype=np.float64),
                             mc.Dropout(0.2, seed=3), mc.ReLU(), mc.Linear(8, 2, seed=2, dtype=np.float64))
    a, b = make(), make()
    ta = mc.Trainer(a, optimizer=mc.SGD(a.parameters(), lr=0.1), batch_size=16, metrics=["f1", "roc_auc"])
    calls = []
    import mlpcore.training.trainer as tr

    real = tr._predict
    tr._predict = lambda *args, **kw: calls.append(1) or real(*args, **kw)
    try:
        h = ta.fit(X, y, epochs=1, seed=4, validation_data=(X[:20], y[:20]), verbose=0)
    finally:
        tr._predict = real
    assert len(calls) == 1  # the validation pass only
    # the same steps module by module, recording each batch's output before its update
    order = mc._core.permutation(96, mc.trainer.epoch_seed(4, 0))
    opt, loss, outs = mc.SGD(b.parameters(), lr=0.1), mc.CrossEntropyLoss(), []
    for start in range(0, 96, 16):
        idx = order[start:start + 16]
        opt.zero_grad()
        out = b._forward_modules(X[idx])
        outs.append(out)
        loss(out, y[idx])
        b._backward_modules(loss.backward())
        opt.step()
    out = np.concatenate(outs)
    assert h.history["f1"][0] == pytest.approx(skm.f1_score(y[order], out.argmax(1)), abs=1e-12)
    assert h.history["roc_auc"][0] == pytest.approx(skm.roc_auc_score(y[order], _softmax(out)[:, 1]), abs=1e-12)


@pytest.mark.parametrize("case", ["ce2", "ce4", "bce1", "bce3"])
@pytest.mark.parametrize("scale", [1.0, 0.01])  # small weights: weighted counts below 1
def test_weighted_metrics_equal_sklearn(case, scale):
    """With sample_weight every named metric equals sklearn.metrics' with the same weights (weights
    of 0.01 make the weighted counts fractional, where a count-only formula would go wrong)."""
    rng = np.random.default_rng(7)
    n, k = 160, int(case[-1])
    w = rng.uniform(0.0, 2.0, n) * scale
    w[:10] = 0.0  # zero-weight rows count for nothing
    names = ["accuracy", "precision", "recall", "f1", "roc_auc"]
    if case.startswith("ce"):
        y = rng.integers(0, k, n)
        out = rng.standard_normal((n, k)) + np.eye(k)[y] * 0.8
        out[10:15] = out[15:20]  # ties in the scores
        got = M.compute(CE, M.resolve(names, CE), out, y, w)
        pred, prob, avg = out.argmax(1), _softmax(out), ("binary" if k == 2 else "macro")
        auc = (skm.roc_auc_score(y, prob[:, 1], sample_weight=w) if k == 2
               else skm.roc_auc_score(y, prob, multi_class="ovr", sample_weight=w))
        acc = skm.accuracy_score(y, pred, sample_weight=w)
    else:
        y = (rng.uniform(size=(n, k)) > 0.4).astype(np.float64)
        out = rng.standard_normal((n, k)) + (y - 0.5)
        got = M.compute(BCE, M.resolve(names, BCE), out, y, w)
        pred = (out > 0).astype(int)
        if k == 1:
            y, pred, out = y[:, 0], pred[:, 0], out[:, 0]
        avg = "binary" if k == 1 else "macro"
        auc = skm.roc_auc_score(y, out, sample_weight=w, **({} if k == 1 else {"average": "macro"}))
        acc = float(np.average(np.mean(pred.reshape(n, -1) == y.reshape(n, -1), axis=1), weights=w))
    assert got["accuracy"] == pytest.approx(acc, abs=1e-12)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[name] == pytest.approx(fn(y, pred, average=avg, sample_weight=w, zero_division=0), abs=1e-12), name
    assert got["roc_auc"] == pytest.approx(auc, abs=1e-12)
