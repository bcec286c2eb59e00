"""Callbacks: hook order, EarlyStopping, ModelCheckpoint, LR schedules (vs PyTorch's schedulers),
ReduceLROnPlateau, TerminateOnNaN, CSVLogger and TensorBoard."""

import csv
import math
import struct
import sys

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.callbacks import (
    Callback,
    CosineAnnealingLR,
    CSVLogger,
    EarlyStopping,
    ExponentialLR,
    ModelCheckpoint,
    ReduceLROnPlateau,
    StepLR,
    TensorBoard,
    TerminateOnNaN,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (rng.normal(size=(n, 2)) + 2.0 * y[:, None]).astype(np.float32)
    return X, y


def make_trainer(lr=0.05, seed=0, **kw):
    m = mc.Sequential(mc.Linear(2, 8, seed=seed), mc.Tanh(), mc.Linear(8, 2, seed=seed + 1))
    return mc.Trainer(m, optimizer=mc.SGD(m.parameters(), lr=lr), batch_size=16, **kw)


def weights(model):
    return [p.data.copy() for p in model.parameters()]


class Scripted(Callback):
    """Overwrites logs[key] at each epoch end with a scripted sequence (put it before the callback
    under test) and records the weights after every epoch."""

    def __init__(self, key, values):
        self.key, self.values, self.snapshots = key, list(values), []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.snapshots.append(weights(self.model))


def test_mc_namespace_exports():
    assert mc.callbacks.EarlyStopping is EarlyStopping
    assert mc.Trainer is mc.trainer.Trainer
    assert isinstance(mc.History(), mc.callbacks.Callback)


def test_hook_order_and_logs():
    events = []

    class Rec(Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin",))

        def on_train_end(self, logs=None):
            events.append(("train_end",))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_batch_begin(self, batch, logs=None):
            events.append(("batch_begin", batch, logs["size"]))

        def on_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, sorted(logs)))

    X, y = data(40)
    cb = Rec()
    assert cb._has_batch_hooks() and not EarlyStopping()._has_batch_hooks()
    tr = make_trainer()
    tr.fit(X, y, epochs=2, validation_split=0.25, callbacks=[cb], verbose=0)
    assert cb.trainer is tr and cb.model is tr.model
    assert cb.params == {"epochs": 2, "steps": 2, "batch_size": 16, "samples": 30, "initial_epoch": 0}
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]

    def per_epoch(e):
        return [("epoch_begin", e), ("batch_begin", 0, 16), ("batch_end", 0, ["batch", "loss", "size"]),
                ("batch_begin", 1, 14), ("batch_end", 1, ["batch", "loss", "size"]), ("epoch_end", e, keys)]

    assert events == [("train_begin",)] + per_epoch(0) + per_epoch(1) + [("train_end",)]


def test_stop_training_and_train_end_on_error():
    class StopAfterFirst(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.trainer.stop_training = True

    class Boom(Callback):
        ended = False

        def on_epoch_begin(self, epoch, logs=None):
            raise KeyError("boom")

        def on_train_end(self, logs=None):
            Boom.ended = True

    X, y = data()
    h = make_trainer().fit(X, y, epochs=5, callbacks=[StopAfterFirst()], verbose=0)
    assert h.epoch == [0]
    with pytest.raises(KeyError, match="boom"):
        make_trainer().fit(X, y, epochs=2, callbacks=[Boom()], verbose=0)
    assert Boom.ended  # on_train_end runs even when fit raises


# ------------------------------------------------------------------------------------------------
# EarlyStopping
# ------------------------------------------------------------------------------------------------

def test_early_stopping_patience_and_restore_best_weights():
    X, y = data()
    script = Scripted("val_loss", [5.0, 4.0, 3.0, 3.5, 2.99, 3.2, 3.3, 1.0, 1.0, 1.0])
    es = EarlyStopping(patience=2, min_delta=0.05, restore_best_weights=True)
    tr = make_trainer()
    h = tr.fit(X, y, epochs=10, validation_split=0.2, callbacks=[script, es], verbose=0)
    # 2.99 is not better than 3.0 by more than min_delta: epochs 3, 4 don't improve -> stop after 4
    assert h.epoch == [0, 1, 2, 3, 4]
    assert (es.stopped_epoch, es.best_epoch, es.best) == (4, 2, 3.0)
    for a, b in zip(weights(tr.model), script.snapshots[2]):
        np.testing.assert_array_equal(a, b)
    # without restore the last weights stay
    script2 = Scripted("val_loss", [5.0, 4.0, 3.0, 3.5, 2.99, 3.2])
    tr2 = make_trainer()
    tr2.fit(X, y, epochs=6, validation_split=0.2, callbacks=[script2, EarlyStopping(patience=2, min_delta=0.05)],
            verbose=0)
    for a, b in zip(weights(tr2.model), script2.snapshots[4]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_the_best_epochs_buffers_too():
    """restore_best_weights brings back BatchNorm's running statistics of the best epoch with its
    weights (Keras restores non-trainable weights too)."""
    X, y = data()

    class States(Scripted):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            self.states = getattr(self, "states", []) + [self.model.state_dict()]

    script = States("val_loss", [5.0, 3.0, 4.0, 4.5, 4.2])
    es = EarlyStopping(patience=3, restore_best_weights=True)
    m = mc.Sequential(mc.Linear(2, 8, seed=0), mc.BatchNorm1d(8), mc.Tanh(), mc.Linear(8, 2, seed=1))
    tr = mc.Trainer(m, optimizer=mc.SGD(m.parameters(), lr=0.05), batch_size=16)
    tr.fit(X, y, epochs=5, validation_split=0.2, callbacks=[script, es], verbose=0)
    assert es.best_epoch == 1 and es.stopped_epoch == 4
    final, best = tr.model.state_dict(), script.states[1]
    assert list(final) == list(best) and "1.running_mean" in final
    assert not np.array_equal(script.states[4]["1.running_mean"], best["1.running_mean"])  # they moved on
    for k in final:
        np.testing.assert_array_equal(final[k], best[k], err_msg=k)


def test_early_stopping_max_mode_and_patience_zero():
    X, y = data()
    script = Scripted("val_accuracy", [0.5, 0.6, 0.6, 0.9])
    es = EarlyStopping(monitor="val_accuracy", patience=0)  # mode auto -> max
    assert es.mode == "max"
    h = make_trainer().fit(X, y, epochs=4, validation_split=0.2, callbacks=[script, es], verbose=0)
    assert h.epoch == [0, 1, 2] and es.best == 0.6 and es.best_epoch == 1


def test_early_stopping_on_real_training_stops_and_restores():
    X, y = data(80)
    es = EarlyStopping(monitor="loss", patience=1, min_delta=10.0, restore_best_weights=True)
    tr = make_trainer()
    h = tr.fit(X, y, epochs=20, callbacks=[es], verbose=0)
    assert h.epoch == [0, 1]  # nothing improves by 10: stop after the second epoch
    assert es.best == h.history["loss"][0]


def test_monitor_errors():
    X, y = data()
    for cb in (EarlyStopping(), ModelCheckpoint("x.safetensors", save_best_only=True), ReduceLROnPlateau()):
        with pytest.raises(ValueError, match="'val_loss' is not in the epoch logs"):
            make_trainer().fit(X, y, epochs=1, callbacks=[cb], verbose=0)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(0)
    with pytest.raises(ValueError, match="gamma"):
        ExponentialLR(-1.0)
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(0)


# ------------------------------------------------------------------------------------------------
# ModelCheckpoint (mc.save from mlpcore.io; a recording double where io is not merged yet)
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def saves(monkeypatch):
    """Record the checkpoint writes of ModelCheckpoint (mlpcore.io.save), still writing the files."""
    import mlpcore.io

    calls = []
    real = mlpcore.io.save

    def save(model, path, optimizer=None, epoch=None, extra=None):
        calls.append({"path": path, "weights": weights(model), "optimizer": optimizer, "epoch": epoch,
                      "extra": extra})
        real(model, path, optimizer=optimizer, epoch=epoch, extra=extra)

    monkeypatch.setattr(mlpcore.io, "save", save)
    return calls


def test_model_checkpoint_every_epoch(tmp_path, saves):
    X, y = data()
    tr = make_trainer()
    cb = ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}-{loss:.3f}.safetensors"))
    h = tr.fit(X, y, epochs=3, callbacks=[cb], verbose=0)
    assert [c["epoch"] for c in saves] == [1, 2, 3]
    assert [c["path"] for c in saves] == cb.saved == [
        str(tmp_path / f"ck-{e + 1:02d}-{h.history['loss'][e]:.3f}.safetensors") for e in range(3)]
    assert all(c["optimizer"] is tr.optimizer and c["extra"] == {"base_lr": 0.05} for c in saves)
    for a, b in zip(saves[-1]["weights"], weights(tr.model)):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_best_only(tmp_path, saves):
    X, y = data()
    script = Scripted("val_loss", [3.0, 2.0, 2.5, 1.0, 1.0])
    tr = make_trainer()
    tr.fit(X, y, epochs=5, validation_split=0.2, verbose=0,
           callbacks=[script, ModelCheckpoint(str(tmp_path / "best.safetensors"), save_best_only=True)])
    assert [c["epoch"] for c in saves] == [1, 2, 4]
    for a, b in zip(saves[-1]["weights"], script.snapshots[3]):
        np.testing.assert_array_equal(a, b)
    if hasattr(mc, "load"):  # the real io: the file holds the best epoch's weights
        loaded = mc.load(str(tmp_path / "best.safetensors"))
        for a, b in zip(weights(loaded), script.snapshots[3]):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------------
# LR schedules
# ------------------------------------------------------------------------------------------------

def lrs_seen(schedule, epochs=7, lr=0.1):
    """(lr in the optimizer during each epoch, history['lr'])."""
    seen = []

    class Spy(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.trainer.optimizer.lr)

    X, y = data(20)
    h = make_trainer(lr=lr).fit(X, y, epochs=epochs, callbacks=[schedule, Spy()], verbose=0)
    return seen, h.history["lr"]


@pytest.mark.parametrize("make", [
    lambda: StepLR(3, gamma=0.5),
    lambda: ExponentialLR(0.8),
    lambda: CosineAnnealingLR(5, eta_min=0.01),
])
def test_schedules_closed_form(make):
    sched = make()
    seen, logged = lrs_seen(sched)
    expected = [sched.lr_at(e, 0.1) for e in range(7)]
    assert seen == logged == expected
    if isinstance(sched, StepLR):
        assert expected == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    if isinstance(sched, ExponentialLR):
        np.testing.assert_allclose(expected, 0.1 * 0.8 ** np.arange(7), rtol=1e-15)
    if isinstance(sched, CosineAnnealingLR):
        assert expected[0] == 0.1 and expected[5] == pytest.approx(0.01)


@pytest.mark.parametrize("which", ["step", "exp", "cos"])
def test_schedules_match_pytorch(which):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    S = torch.optim.lr_scheduler
    torch_sched, ours = {
        "step": (S.StepLR(opt, step_size=3, gamma=0.5), StepLR(3, gamma=0.5)),
        "exp": (S.ExponentialLR(opt, gamma=0.8), ExponentialLR(0.8)),
        "cos": (S.CosineAnnealingLR(opt, T_max=5, eta_min=0.01), CosineAnnealingLR(5, eta_min=0.01)),
    }[which]
    expected = []
    for _ in range(7):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        torch_sched.step()
    seen, _ = lrs_seen(ours)
    np.testing.assert_allclose(seen, expected, rtol=1e-12)


def test_cosine_to_zero_keeps_a_positive_lr():
    sched = CosineAnnealingLR(4)
    assert sched.lr_at(4, 0.1) == pytest.approx(1e-13) and sched.lr_at(4, 0.1) > 0
    seen, _ = lrs_seen(sched, epochs=6)
    assert seen[4] > 0


def test_schedule_explicit_base_lr():
    seen, _ = lrs_seen(StepLR(2, gamma=0.1, base_lr=1.0), epochs=4, lr=0.3)
    np.testing.assert_allclose(seen, [1.0, 1.0, 0.1, 0.1])


def test_reduce_lr_on_plateau_follows_keras_semantics():
    X, y = data(20)
    vals = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5]
    rl = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    h = make_trainer(lr=0.1).fit(X, y, epochs=12, validation_split=0.25, verbose=0,
                                 callbacks=[Scripted("val_loss", vals), rl])
    # "lr" logs the rate used during each epoch. Keras' order: a cooldown epoch first counts the
    # cooldown down (and resets wait), then may already count as a bad epoch. Epochs 2, 3 don't
    # improve -> halve after 3 (cooldown 1); 4 (cooldown ends), 5 -> halve after 5; 6 waits;
    # 0.5 improves at 7; 8, 9 -> after 9 max(0.0125, min_lr) = 0.02; 10, 11: already at min_lr.
    assert h.history["lr"] == pytest.approx([0.1] * 4 + [0.05] * 2 + [0.025] * 4 + [0.02] * 2)


# ------------------------------------------------------------------------------------------------
# TerminateOnNaN, CSVLogger, TensorBoard
# ------------------------------------------------------------------------------------------------

def test_terminate_on_nan():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(32, 3)), rng.normal(size=(32, 1))
    m = mc.Sequential(mc.Linear(3, 8, dtype=np.float64, seed=0), mc.ReLU(), mc.Linear(8, 1, dtype=np.float64, seed=1))
    tr = mc.Trainer(m, loss=mc.MSELoss(), optimizer=mc.SGD(m.parameters(), lr=1e150), batch_size=8)
    cb = TerminateOnNaN()
    with np.errstate(all="ignore"):
        h = tr.fit(X, Y, epochs=5, callbacks=[cb], check_finite=False, train_metrics=False, verbose=0)
    assert h.epoch == [0] and cb.stopped_epoch == 0 and not math.isfinite(h.history["loss"][0])
    # finite training is not stopped
    X2, y2 = data()
    cb2 = TerminateOnNaN()
    assert make_trainer().fit(X2, y2, epochs=3, callbacks=[cb2], verbose=0).epoch == [0, 1, 2]
    assert cb2.stopped_epoch is None


def test_csv_logger(tmp_path):
    X, y = data()
    path = tmp_path / "log.csv"
    cb = CSVLogger(path)
    h = make_trainer().fit(X, y, epochs=3, validation_split=0.2, callbacks=[StepLR(1, 0.5), cb], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert len(rows) == 4
    for e, row in enumerate(rows[1:]):
        assert int(row[0]) == e
        for k, v in zip(rows[0][1:], row[1:]):
            assert float(v) == h.history[k][e]  # repr round-trips exactly
    # append continues without a second header
    make_trainer().fit(X, y, epochs=2, validation_split=0.2, callbacks=[StepLR(1, 0.5), CSVLogger(path, append=True)],
                       verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 6 and rows[4][0] == "0"
    # the file is closed even when fit raises
    cb3 = CSVLogger(tmp_path / "err.csv")
    with pytest.raises(ValueError):
        make_trainer().fit(X, y, epochs=2, callbacks=[cb3, EarlyStopping()], verbose=0)
    assert cb3._file is None


def _read_tfevents(path):
    """Scalars from a TensorBoard event file: {tag: [(step, value)]} (TFRecord framing, then
    tensorboardX's Event protobuf)."""
    from tensorboardX.proto import event_pb2

    out = {}
    with open(path, "rb") as f:
        buf = f.read()
    i = 0
    while i < len(buf):
        (n,) = struct.unpack("<Q", buf[i:i + 8])
        ev = event_pb2.Event.FromString(buf[i + 12:i + 12 + n])
        i += 12 + n + 4
        for v in ev.summary.value:
            out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    X, y = data()
    cb = TensorBoard(tmp_path / "run")
    h = make_trainer().fit(X, y, epochs=3, validation_split=0.2, callbacks=[ExponentialLR(0.9), cb], verbose=0)
    assert cb.writer is None  # closed at the end
    files = list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert len(files) == 1
    scalars = _read_tfevents(files[0])
    assert set(scalars) == {"loss/train", "accuracy/train", "loss/val", "accuracy/val", "lr"}
    for tag, key in [("loss/train", "loss"), ("loss/val", "val_loss"), ("accuracy/val", "val_accuracy"),
                     ("lr", "lr")]:
        assert [s for s, _ in scalars[tag]] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in scalars[tag]], h.history[key], rtol=1e-6)


def test_tensorboard_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"mlpcore\[tensorboard\]"):
        TensorBoard("runs")


def test_history_repr_and_types():
    X, y = data()
    h = make_trainer().fit(X, y, epochs=2, verbose=0)
    assert "epochs=2" in repr(h)
    assert all(isinstance(v, float) for vs in h.history.values() for v in vs)
