"""Per-batch learning-rate schedules: OneCycleLR against torch.optim.lr_scheduler.OneCycleLR
(lr and momentum of every batch, and whole fits step for step), LinearWarmup against LinearLR
(alone and chained with a per-epoch schedule), resume, and their argument checks."""

import helpers
import mlpcore as mc
import numpy as np
import pytest

torch = helpers.import_torch()
CB = mc.callbacks


def _model(seed=0):
    return mc.Sequential(mc.Linear(4, 10, dtype=np.float64, seed=seed), mc.Tanh(),
                         mc.Linear(10, 3, dtype=np.float64, seed=seed + 1))


def _data(n=30):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, 4))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3).astype(int)


class _Record(CB.Callback):
    """The lr and momentum each batch trains with (after the schedule ran in on_batch_begin)."""

    def __init__(self):
        self.lrs, self.moms = [], []

    def on_batch_end(self, batch, logs=None):  # the values the step used
        self.lrs.append(self.trainer.optimizer.lr)
        self.moms.append(self.trainer.optimizer.momentum)


def _torch_fit(twin, topt, sched_step, X, y, epochs, bs, seed, epoch_step=None):
    """PyTorch's loop with the same batches as Trainer.fit(seed=seed)."""
    lrs, moms, losses = [], [], []
    for epoch in range(epochs):
        order = mc._core.permutation(len(X), mc.trainer.epoch_seed(seed, epoch))
        for start in range(0, len(X), bs):
            idx = order[start:start + bs]
            g = topt.param_groups[0]
            lrs.append(g["lr"])
            moms.append(g["betas"][0] if "betas" in g else g["momentum"])
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(X[idx])), torch.from_numpy(y[idx]))
            loss.backward()
            topt.step()
            sched_step()
            losses.append(loss.item())
        if epoch_step is not None:
            epoch_step()
    return lrs, moms, losses


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("kw", [{}, {"anneal_strategy": "linear", "pct_start": 0.25},
                                {"three_phase": True, "div_factor": 10.0, "final_div_factor": 100.0},
                                {"cycle_momentum": False}])
def test_one_cycle_fit_equals_pytorch(opt_name, kw):
    X, y = _data()
    model = _model()
    twin = model.to_torch()
    if opt_name == "sgd":
        opt, topt = mc.SGD(model.parameters(), lr=0.01, momentum=0.9), torch.optim.SGD(twin.parameters(), lr=0.01,
                                                                                      momentum=0.9)
    else:
        opt, topt = mc.Adam(model.parameters(), lr=0.01), torch.optim.Adam(twin.parameters(), lr=0.01)
    epochs, bs = 4, 8  # 4 batches per epoch, the last one of 6 rows
    sched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.5, epochs=epochs, steps_per_epoch=4, **kw)
    rec = _Record()
    trainer = mc.Trainer(model, optimizer=opt, batch_size=bs)
    h = trainer.fit(X, y, epochs=epochs, seed=5, callbacks=[CB.OneCycleLR(0.5, epochs, 4, **kw), rec],
                    verbose=0)
    lrs, moms, _ = _torch_fit(twin, topt, sched.step, X, y, epochs, bs, 5)
    np.testing.assert_allclose(rec.lrs, lrs, rtol=1e-12)
    np.testing.assert_allclose(rec.moms, moms, rtol=1e-12)
    assert h.history["lr"] == [rec.lrs[4 * e + 3] for e in range(epochs)]
    for (name, p), tp in zip(model.named_parameters(), twin.parameters()):
        helpers.assert_close_torch(p.data, tp, np.float64, f"OneCycleLR {opt_name} {kw} {name}")


def test_one_cycle_defaults_from_the_fit_and_refuses_to_step_past_the_end():
    X, y = _data()
    rec = _Record()
    model = _model()
    mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=10).fit(
        X, y, epochs=2, callbacks=[CB.OneCycleLR(1.0), rec], verbose=0)
    assert len(rec.lrs) == 6 and rec.lrs[0] == pytest.approx(1.0 / 25)
    model = _model()
    with pytest.raises(ValueError, match="total steps is 4"):
        mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=10).fit(
            X, y, epochs=3, callbacks=[CB.OneCycleLR(1.0, total_steps=4)], verbose=0)


def test_linear_warmup_alone_equals_linear_lr():
    X, y = _data()
    model = _model()
    twin = model.to_torch()
    opt, topt = mc.SGD(model.parameters(), lr=0.2), torch.optim.SGD(twin.parameters(), lr=0.2)
    sched = torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.1, total_iters=5)
    rec = _Record()
    mc.Trainer(model, optimizer=opt, batch_size=8).fit(
        X, y, epochs=3, seed=1, callbacks=[CB.LinearWarmup(5, start_factor=0.1), rec], verbose=0)
    lrs, _, _ = _torch_fit(twin, topt, sched.step, X, y, 3, 8, 1)
    np.testing.assert_allclose(rec.lrs, lrs, rtol=1e-12)
    for p, tp in zip(model.parameters(), twin.parameters()):
        helpers.assert_close_torch(p.data, tp, np.float64, "LinearWarmup alone")


def test_linear_warmup_in_front_of_a_per_epoch_schedule_equals_chained_pytorch():
    X, y = _data()
    model = _model()
    twin = model.to_torch()
    opt, topt = mc.Adam(model.parameters(), lr=0.05), torch.optim.Adam(twin.parameters(), lr=0.05)
    warm = torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.25, total_iters=6)
    step = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.5)
    rec = _Record()
    h = mc.Trainer(model, optimizer=opt, batch_size=8).fit(
        X, y, epochs=3, seed=2, callbacks=[CB.LinearWarmup(6, start_factor=0.25, schedule=CB.StepLR(1, 0.5)), rec],
        verbose=0)
    lrs, _, _ = _torch_fit(twin, topt, warm.step, X, y, 3, 8, 2, epoch_step=step.step)
    np.testing.assert_allclose(rec.lrs, lrs, rtol=1e-12)
    assert h.history["lr"] == [rec.lrs[3], rec.lrs[7], rec.lrs[11]]
    for p, tp in zip(model.parameters(), twin.parameters()):
        helpers.assert_close_torch(p.data, tp, np.float64, "LinearWarmup + StepLR")


def test_linear_warmup_wraps_one_cycle_and_plateau():
    X, y = _data()
    rec = _Record()
    model = _model()
    mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1, momentum=0.9), batch_size=10).fit(
        X, y, epochs=2, callbacks=[CB.LinearWarmup(3, schedule=CB.OneCycleLR(1.0)), rec], verbose=0)
    one = CB.OneCycleLR(1.0, epochs=2, steps_per_epoch=3)
    one.on_train_begin()  # the phases
    want = [one.values_at(s)[0] * min(1.0, 1 / 3 + (2 / 3) * min(s, 3) / 3) for s in range(6)]
    np.testing.assert_allclose(rec.lrs, want, rtol=1e-12)
    model = _model()
    h = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=10).fit(
        X, y, epochs=3, validation_split=0.2,
        callbacks=[CB.LinearWarmup(2, schedule=CB.ReduceLROnPlateau(factor=0.5, patience=0))], verbose=0)
    assert len(h.history["lr"]) == 3


@pytest.mark.parametrize("make", [lambda: CB.OneCycleLR(0.3, 4, 3), lambda: CB.LinearWarmup(5, 0.2)])
def test_resume_continues_a_batch_schedule_bit_exactly(tmp_path, make):
    X, y = _data()

    def trainer():
        m = _model()
        return mc.Trainer(m, optimizer=mc.SGD(m.parameters(), lr=0.1, momentum=0.9), batch_size=10)

    full = trainer()
    h_full = full.fit(X, y, epochs=4, seed=3, callbacks=[make()], verbose=0)
    path = tmp_path / "ck.safetensors"
    trainer().fit(X, y, epochs=2, seed=3, callbacks=[make(), CB.ModelCheckpoint(path, monitor="loss")],
                  verbose=0)
    resumed = trainer()
    h = resumed.fit(X, y, epochs=4, seed=3, resume_from=path, callbacks=[make()], verbose=0)
    assert h.history["loss"] == h_full.history["loss"][2:] and h.history["lr"] == h_full.history["lr"][2:]
    for p, q in zip(resumed.model.parameters(), full.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_schedule_arguments_are_checked():
    for bad in ({"max_lr": 0}, {"max_lr": 1.0, "pct_start": 1.5}, {"max_lr": 1.0, "anneal_strategy": "exp"},
                {"max_lr": 1.0, "div_factor": 0}, {"max_lr": 1.0, "epochs": 0}):
        with pytest.raises(ValueError):
            CB.OneCycleLR(**bad)
    for bad in ({"warmup_steps": 0}, {"warmup_steps": 3, "start_factor": 0}, {"warmup_steps": 3, "end_factor": 2}):
        with pytest.raises(ValueError):
            CB.LinearWarmup(**bad)
    with pytest.raises(TypeError, match="schedule"):
        CB.LinearWarmup(3, schedule="cos")
