"""fit ends early: Ctrl-C (SIGINT) inside a compiled epoch arrives between two training steps, with
the weights and the optimizer state of a whole number of steps; an exception keeps the finished
epochs in trainer.history."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.callbacks import Callback

# The child trains a 128-512-512-10 MLP (one thread, Adam, batch 64) on 65536 rows: one epoch is
# 1024 compiled steps in one C++ call. After epoch 1 it says "ready"; the parent sends SIGINT
# shortly after, inside epoch 2. The child then replays the run step by step on a twin model and
# reports after how many whole steps of epoch 2 the interrupted weights and Adam state stood.
CHILD = r"""
import json, sys, time
import numpy as np
import mlpcore as mc
from mlpcore.callbacks import Callback

mc.set_num_threads(1)
rng = np.random.default_rng(0)
X = rng.standard_normal((65536, 128)).astype(np.float32)
y = rng.integers(0, 10, 65536)
BS = 64

def build():
    m = mc.Sequential(mc.Linear(128, 512, seed=0), mc.ReLU(), mc.Linear(512, 512, seed=1), mc.ReLU(),
                      mc.Linear(512, 10, seed=2))
    return m, mc.Adam(m.parameters(), lr=1e-3)

class Ready(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()
    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds = time.time() - self.t0
        print("ready", flush=True)

model, opt = build()
trainer = mc.Trainer(model, optimizer=opt, batch_size=BS)
ready = Ready()
try:
    trainer.fit(X, y, epochs=3, seed=0, verbose=0, callbacks=[ready])
    raised_at = None
except KeyboardInterrupt:
    raised_at = time.time()

# replay: epoch 1 whole, then epoch 2 one step at a time, comparing after each step
twin, topt = build()
net, kind = twin.compiled(), mc.CrossEntropyLoss.kind
net.train_epoch(topt._core, kind, X, y, BS, True, mc._core.epoch_seed(0, 0), 0)
want = [p.data for p in model.parameters()]
state = opt._core.read_state()
steps = None
for j in range(len(X) // BS):
    if all(np.array_equal(a, p.data) for a, p in zip(want, twin.parameters())):
        steps = j
        break
    net.train_epoch(topt._core, kind, X, y, BS, True, mc._core.epoch_seed(0, 1), 1, True, j, j + 1)
same_state = steps is not None and np.array_equal(state, topt._core.read_state()) and opt.step_count == topt.step_count
print(json.dumps({"raised_at": raised_at, "steps": steps, "batches": len(X) // BS, "same_state": bool(same_state),
                  "history": trainer.history.epoch, "epoch_seconds": ready.epoch_seconds}), flush=True)
"""


def test_ctrl_c_inside_a_compiled_epoch_stops_between_steps():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(0.3)  # well inside epoch 2
        sent_at = time.time()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=240)
    finally:
        child.kill()
    assert child.returncode == 0, err
    r = json.loads(out.strip().splitlines()[-1])
    assert r["raised_at"] is not None, "fit finished without KeyboardInterrupt"
    latency = r["raised_at"] - sent_at
    print(f"Ctrl-C latency {latency * 1e3:.1f} ms (epoch: {r['epoch_seconds']:.2f} s, stopped after "
          f"{r['steps']} of {r['batches']} steps)")
    # the weights and Adam's state are exactly those after a whole number of steps of epoch 2 ...
    assert r["steps"] is not None and r["same_state"], r
    # ... taken mid-epoch, not at its end (the old behaviour): the exception did not wait for it
    assert 0 < r["steps"] < r["batches"], r
    assert latency < r["epoch_seconds"], (latency, r)
    assert r["history"] == [0]  # epoch 1 finished and is kept


class FailAt(Callback):
    def __init__(self, epoch, exc):
        self.epoch, self.exc = epoch, exc

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise self.exc


@pytest.mark.parametrize("compiled", [None, False])
@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("stop")], ids=["KeyboardInterrupt", "error"])
def test_history_keeps_the_finished_epochs_when_fit_raises(compiled, exc):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    m = mc.Sequential(mc.Linear(3, 4, seed=0), mc.Tanh(), mc.Linear(4, 2, seed=1))
    tr = mc.Trainer(m, batch_size=8, compiled=compiled)
    with pytest.raises(type(exc)):
        tr.fit(X, y, epochs=5, verbose=0, callbacks=[FailAt(2, exc)], validation_split=0.25)
    assert tr.history.epoch == [0, 1]
    assert set(tr.history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in tr.history.history.values())


class Explode(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            self.trainer.optimizer.lr = 1e150


@pytest.mark.parametrize("compiled", [None, False])
def test_a_non_finite_loss_keeps_the_finished_epochs(compiled):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((32, 3)), rng.standard_normal((32, 1))
    m = mc.Sequential(mc.Linear(3, 8, dtype=np.float64, seed=0), mc.ReLU(), mc.Linear(8, 1, dtype=np.float64, seed=1))
    tr = mc.Trainer(m, loss=mc.MSELoss(), optimizer=mc.SGD(m.parameters(), lr=0.05), batch_size=8, compiled=compiled)
    with pytest.raises(RuntimeError, match=r"non-finite loss .* at epoch 3, batch 2;"):  # counted from 1
        tr.fit(X, Y, epochs=5, verbose=0, callbacks=[Explode()])
    assert tr.history.epoch == [0, 1] and len(tr.history.history["loss"]) == 2
