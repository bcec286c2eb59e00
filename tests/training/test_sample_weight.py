"""Sample weights through the Trainer (fit, evaluate, train_on_batch, validation data, the epoch
runner the estimators drive), the new losses in the Trainer (metrics, predict_proba), and
losses with parameters as objects (repr, pickling, deep copies, Trainer pickling)."""

import copy
import pickle

import mlpcore as mc
import numpy as np
import pytest


pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(sizes=(3, 8, 2), dtype=np.float64, seed=0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(mc.Linear(a, b, dtype=dtype, seed=seed + i))
        if i < len(sizes) - 2:
            layers.append(mc.Tanh())
    return mc.Sequential(*layers)


def regression(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    Y = np.stack([X @ [1.0, -1.0, 0.5], np.sin(X[:, 0])], 1)
    return X, Y, rng.uniform(0.1, 3.0, n)


def classification(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 1), rng.uniform(0.1, 3.0, n)


def trainer(loss, compiled=None, sizes=(3, 8, 2), seed=0):
    m = mlp(sizes, seed=seed)
    return mc.Trainer(m, loss=loss, optimizer=mc.SGD(m.parameters(), lr=0.05, momentum=0.9), batch_size=8,
                      compiled=compiled)


def params(tr):
    return [p.data.copy() for p in tr.model.parameters()]


@pytest.mark.parametrize("compiled", [None, False], ids=["compiled", "modules"])
def test_unit_weights_change_nothing(compiled):
    X, Y, _ = regression()
    a, b = trainer(mc.HuberLoss(delta=0.5), compiled), trainer(mc.HuberLoss(delta=0.5), compiled)
    ha = a.fit(X, Y, epochs=3, verbose=0, seed=1)
    hb = b.fit(X, Y, epochs=3, verbose=0, seed=1, sample_weight=np.ones(60))
    assert ha.history["loss"] == hb.history["loss"]
    for p, q in zip(params(a), params(b)):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("loss", [mc.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], label_smoothing=0.1), mc.L1Loss()],
                         ids=["ce", "l1"])
def test_both_paths_train_the_same_with_weights(loss):
    X, Y, w = classification() if loss.kind == mc._core.LossKind.cross_entropy else regression()
    out = 3 if loss.kind == mc._core.LossKind.cross_entropy else 2
    a, b = trainer(loss, None, (3, 8, out)), trainer(loss, False, (3, 8, out))
    ha = a.fit(X, Y, epochs=2, verbose=0, sample_weight=w, validation_data=(X, Y, w))
    hb = b.fit(X, Y, epochs=2, verbose=0, sample_weight=w, validation_data=(X, Y, w))
    assert ha.history == hb.history
    for p, q in zip(params(a), params(b)):
        np.testing.assert_array_equal(p, q)


def test_weights_are_shuffled_with_their_rows():
    """Permuting (X, y, w) together before an unshuffled fit is the same as the fit's own shuffle."""
    X, Y, w = regression(n=24)
    a, b = trainer(mc.MSELoss()), trainer(mc.MSELoss())
    a.fit(X, Y, epochs=1, batch_size=8, seed=3, sample_weight=w, verbose=0)
    order = mc._core.permutation(24, mc.trainer.epoch_seed(3, 0))
    b.fit(X[order], Y[order], epochs=1, batch_size=8, shuffle=False, sample_weight=w[order], verbose=0)
    for p, q in zip(params(a), params(b)):
        np.testing.assert_array_equal(p, q)


def test_batch_loss_is_the_weighted_mean_of_its_rows():
    """train_on_batch returns sum(w l) / sum(w) (one output: scikit-learn's np.average)."""
    X, Y, w = regression(n=10)
    tr = trainer(mc.MSELoss(), sizes=(3, 8, 1))
    out = tr.predict(X)[:, 0]
    want = np.average((out - Y[:, 0]) ** 2, weights=w)
    assert tr.train_on_batch(X, Y[:, 0], sample_weight=w) == pytest.approx(want, rel=1e-13)
    want = np.average((tr.predict(X)[:, 0] - Y[:, 0]) ** 2, weights=w)  # after the first step
    assert tr.train_on_batch(X, Y[:, 0], sample_weight=list(w)) == pytest.approx(want, rel=1e-13)


def test_all_zero_weights_train_nothing_and_make_no_nan():
    X, Y, _ = regression()
    tr = trainer(mc.PoissonNLLLoss())
    before = params(tr)
    h = tr.fit(X, np.abs(Y), epochs=2, verbose=0, sample_weight=np.zeros(60))
    assert h.history["loss"] == [0.0, 0.0]
    for p, q in zip(params(tr), before):
        np.testing.assert_array_equal(p, q)


def test_weighted_evaluate_and_validation_logs_match_sklearn_metrics():
    metrics = pytest.importorskip("sklearn.metrics")
    X, Y, w = regression(seed=2)
    tr = trainer(mc.SmoothL1Loss(beta=0.5))
    h = tr.fit(X[:40], Y[:40], epochs=2, verbose=0, sample_weight=w[:40],
               validation_data=(X[40:], Y[40:], w[40:]))
    ev = tr.evaluate(X[40:], Y[40:], sample_weight=w[40:])
    assert h.history["val_loss"][-1] == ev["loss"] and h.history["val_r2"][-1] == ev["r2"]
    pred = tr.predict(X[40:])
    ww = w[40:]
    assert ev["mse"] == pytest.approx(metrics.mean_squared_error(Y[40:], pred, sample_weight=ww), rel=1e-12)
    assert ev["mae"] == pytest.approx(metrics.mean_absolute_error(Y[40:], pred, sample_weight=ww), rel=1e-12)
    assert ev["r2"] == pytest.approx(metrics.r2_score(Y[40:], pred, sample_weight=ww), rel=1e-12)
    assert ev["loss"] == pytest.approx(mc.SmoothL1Loss(beta=0.5)(pred, Y[40:], ww), rel=1e-14)
    assert tr.evaluate(X[40:], Y[40:])["loss"] != ev["loss"]

    Xc, yc, wc = classification(seed=3)
    tc = trainer(mc.CrossEntropyLoss(), sizes=(3, 8, 3))
    tc.fit(Xc, yc, epochs=2, verbose=0, sample_weight=wc)
    ev = tc.evaluate(Xc, yc, sample_weight=wc)
    logits = tc.predict(Xc)
    assert ev["accuracy"] == pytest.approx(metrics.accuracy_score(yc, logits.argmax(1), sample_weight=wc), rel=1e-14)
    assert ev["loss"] == pytest.approx(mc.CrossEntropyLoss()(logits, yc, wc), rel=1e-14)
    assert tc.evaluate(Xc, yc)["loss"] == pytest.approx(mc.CrossEntropyLoss()(logits, yc), rel=1e-14)


def test_validation_split_takes_the_weights_of_its_rows():
    X, Y, w = regression()
    a, b = trainer(mc.MSELoss()), trainer(mc.MSELoss())
    ha = a.fit(X, Y, epochs=2, verbose=0, sample_weight=w, validation_split=0.25)
    hb = b.fit(X[:45], Y[:45], epochs=2, verbose=0, sample_weight=w[:45], validation_data=(X[45:], Y[45:], w[45:]))
    assert ha.history == hb.history


def test_train_metrics_are_weighted():
    X, Y, w = regression()
    tr = trainer(mc.MSELoss())
    h = tr.fit(X, Y, epochs=1, verbose=0, sample_weight=w, train_metrics=True)
    assert h.history["r2"] == [tr.evaluate(X, Y, sample_weight=w)["r2"]]


def test_new_losses_get_their_metrics():
    X, Y, _ = regression()
    for loss in (mc.L1Loss(), mc.HuberLoss(), mc.SmoothL1Loss()):
        tr = trainer(loss)
        h = tr.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y))
        assert set(h.history) == {"loss", "val_loss", "val_mse", "val_mae", "val_r2"}
        with pytest.raises(ValueError, match="predict_proba"):
            tr.predict_proba(X)
    tr = trainer(mc.PoissonNLLLoss())
    h = tr.fit(X, np.abs(Y), epochs=1, verbose=0, validation_data=(X, np.abs(Y)))
    assert set(h.history) == {"loss", "val_loss"}
    tb = trainer(mc.BCEWithLogitsLoss(pos_weight=[2.0, 0.5]))
    h = tb.fit(X, (Y > 0).astype(float), epochs=1, verbose=0, validation_data=(X, (Y > 0).astype(float)))
    assert set(h.history) == {"loss", "val_loss", "val_accuracy"}


def test_sample_weight_errors_name_the_argument():
    X, Y, w = regression()
    tr = trainer(mc.MSELoss())
    with pytest.raises(ValueError, match="sample_weight: has 59 weights but X has 60 rows"):
        tr.fit(X, Y, epochs=1, verbose=0, sample_weight=w[:-1])
    with pytest.raises(ValueError, match="sample_weight: expected a 1-D array"):
        tr.fit(X, Y, epochs=1, verbose=0, sample_weight=w[:, None])
    bad = w.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="sample_weight: contains NaN or Inf"):
        tr.fit(X, Y, epochs=1, verbose=0, sample_weight=bad)
    with pytest.raises(TypeError, match="sample_weight"):
        tr.fit(X, Y, epochs=1, verbose=0, sample_weight=np.array(["a"] * 60))
    with pytest.raises(ValueError, match="sample_weight_val: has 3 weights but X_val has 60 rows"):
        tr.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y, w[:3]))
    with pytest.raises(ValueError, match="validation_data: expected"):
        tr.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y, w, w))
    with pytest.raises(ValueError, match="sample_weight: has 2 weights but X has 60 rows"):
        tr.evaluate(X, Y, sample_weight=w[:2])
    with pytest.raises(ValueError, match="sample_weight: has 2 weights"):
        tr.train_on_batch(X, Y, sample_weight=w[:2])
    with pytest.raises(ValueError, match="sample_weight: has 2 weights but the prediction has 60 rows"):
        mc.MSELoss()(Y, Y, w[:2])
    net = tr.model.compiled()
    with pytest.raises(ValueError, match="sample_weight: has 2 weights but X has 60 rows"):
        net.train_epoch(tr.optimizer._core, tr.loss.spec, X, Y, 8, True, 0, sample_weight=w[:2])
    with pytest.raises(ValueError, match="sample_weight: has 2 weights but x has 60 rows"):
        net.train_step(tr.optimizer._core, tr.loss.spec, X, Y, sample_weight=w[:2])
    with pytest.raises(ValueError, match="sample_weight: contains NaN"):
        net.evaluate(tr.loss.spec, X, Y, sample_weight=bad)


def test_pandas_series_weights():
    pd = pytest.importorskip("pandas")
    X, Y, w = regression()
    a, b = trainer(mc.MSELoss()), trainer(mc.MSELoss())
    a.fit(X, Y, epochs=1, verbose=0, sample_weight=w)
    b.fit(X, Y, epochs=1, verbose=0, sample_weight=pd.Series(w))
    for p, q in zip(params(a), params(b)):
        np.testing.assert_array_equal(p, q)


# ----- losses as objects -------------------------------------------------------------------------

LOSSES = [mc.MSELoss(), mc.L1Loss(), mc.HuberLoss(delta=2.5), mc.SmoothL1Loss(beta=0.0),
          mc.CrossEntropyLoss(weight=[1.0, 3.0], label_smoothing=0.2), mc.BCEWithLogitsLoss(pos_weight=[0.5, 4.0]),
          mc.PoissonNLLLoss(log_input=False, full=True, eps=1e-3)]


def test_repr_shows_the_parameters_that_differ_from_the_defaults():
    assert [repr(x) for x in LOSSES] == [
        "MSELoss()", "L1Loss()", "HuberLoss(delta=2.5)", "SmoothL1Loss(beta=0.0)",
        "CrossEntropyLoss(weight=[1.0, 3.0], label_smoothing=0.2)", "BCEWithLogitsLoss(pos_weight=[0.5, 4.0])",
        "PoissonNLLLoss(log_input=False, full=True, eps=0.001)"]
    assert repr(mc.HuberLoss()) == "HuberLoss()" and repr(mc.PoissonNLLLoss()) == "PoissonNLLLoss()"
    assert repr(mc.HuberLoss(delta=2.5).spec) == "LossSpec(huber, delta=2.5)"


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_losses_pickle_and_copy_with_their_parameters(loss):
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.1, 2.0, (5, 2))
    target = rng.integers(0, 2, 5) if loss.kind == mc._core.LossKind.cross_entropy else rng.uniform(0, 1, (5, 2))
    w = rng.uniform(0, 1, 5)
    want = loss(pred, target, w)
    for other in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss), copy.copy(loss)):
        assert type(other) is type(loss) and repr(other) == repr(loss)
        assert other(pred, target, w) == want
        np.testing.assert_array_equal(other.backward(), loss.backward())


def test_trainer_pickles_its_loss_and_trains_on():
    X, Y, w = classification()
    tr = trainer(mc.CrossEntropyLoss(weight=[1.0, 2.0, 3.0], label_smoothing=0.1), sizes=(3, 8, 3))
    tr.fit(X, Y, epochs=1, verbose=0, sample_weight=w)
    clone = pickle.loads(pickle.dumps(tr))
    assert repr(clone.loss) == repr(tr.loss) and "label_smoothing=0.1" in repr(clone)
    ha = tr.fit(X, Y, epochs=1, verbose=0, sample_weight=w)
    hb = clone.fit(X, Y, epochs=1, verbose=0, sample_weight=w)
    assert ha.history == hb.history
