"""Whole-run twins: Trainer.fit with LayerNorm, BatchNorm1d, gradient clipping and OneCycleLR
equals a PyTorch loop doing the same, step for step (every batch loss, the final weights, the
running statistics, the eval-mode validation loss; float64; full batch and mini-batches; the
compiled path and the module path)."""

import helpers
import mlpcore as mc
import numpy as np
import pytest

torch = helpers.import_torch()
F64 = np.float64


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)) * 2 + 1
    return X, (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)


MODELS = {
    "layer_norm": lambda: mc.Sequential(mc.Linear(5, 16, dtype=F64, seed=1), mc.LayerNorm(16, dtype=F64), mc.GELU(),
                                        mc.Linear(16, 16, dtype=F64, seed=2), mc.LayerNorm(16, dtype=F64), mc.ReLU(),
                                        mc.Linear(16, 3, dtype=F64, seed=3)),
    "batch_norm": lambda: mc.Sequential(mc.Linear(5, 16, bias=False, dtype=F64, seed=1), mc.BatchNorm1d(16, dtype=F64),
                                        mc.ReLU(), mc.Linear(16, 16, bias=False, dtype=F64, seed=2),
                                        mc.BatchNorm1d(16, momentum=None, dtype=F64), mc.Tanh(),
                                        mc.Linear(16, 3, dtype=F64, seed=3)),
    "both_clipped": lambda: mc.Sequential(mc.Linear(5, 16, bias=False, dtype=F64, seed=1), mc.BatchNorm1d(16, dtype=F64),
                                          mc.ReLU(), mc.LayerNorm(16, dtype=F64), mc.Linear(16, 3, dtype=F64, seed=3)),
}


class _Losses(mc.callbacks.Callback):
    def __init__(self):
        self.values = []

    def on_batch_end(self, batch, logs=None):
        self.values.append(logs["loss"])


@pytest.mark.parametrize("compiled", [None, False])
@pytest.mark.parametrize("batch_size", [40, 12])
@pytest.mark.parametrize("name", list(MODELS))
def test_fit_equals_a_pytorch_loop(name, batch_size, compiled):
    X, y = _data()
    Xv, yv = _data(15, seed=1)
    model = MODELS[name]()
    twin = model.to_torch()
    clip = 0.3 if name == "both_clipped" else None
    one_cycle = name != "layer_norm"
    epochs = 3
    steps = -(-len(X) // batch_size)
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    cbs = [_Losses()]
    sched = None
    if one_cycle:
        cbs.append(mc.callbacks.OneCycleLR(0.5, epochs, steps))
        sched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.5, epochs=epochs, steps_per_epoch=steps)
    trainer = mc.Trainer(model, optimizer=opt, batch_size=batch_size, compiled=compiled, clip_grad_norm=clip)
    h = trainer.fit(X, y, epochs=epochs, seed=11, validation_data=(Xv, yv), callbacks=cbs, verbose=0)

    tlosses, tval = [], []
    for epoch in range(epochs):
        twin.train()
        order = mc._core.permutation(len(X), mc.trainer.epoch_seed(11, epoch))
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(X[idx])), torch.from_numpy(y[idx]))
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(twin.parameters(), clip)
            topt.step()
            if sched is not None:
                sched.step()
            tlosses.append(loss.item())
        twin.eval()
        with torch.no_grad():
            tval.append(torch.nn.functional.cross_entropy(twin(torch.from_numpy(Xv)), torch.from_numpy(yv)).item())
    where = f"fit {name} bs={batch_size} compiled={compiled}"
    helpers.assert_close_torch(np.array(cbs[0].values), np.array(tlosses), F64, f"{where} batch losses")
    helpers.assert_close_torch(np.array(h.history["val_loss"]), np.array(tval), F64, f"{where} val_loss")
    tsd = twin.state_dict()
    for k, v in model.state_dict().items():  # weights and running statistics
        helpers.assert_close_torch(v, tsd[k], F64, f"{where} {k}")
