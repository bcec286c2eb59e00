"""Trainer: Keras-shaped training on top of the compiled core (``fit``, ``evaluate``, ``predict``).

    trainer = mc.Trainer(model, loss=mc.CrossEntropyLoss(), optimizer=opt, batch_size=128)
    history = trainer.fit(X, y, epochs=10, validation_split=0.1, callbacks=[...])
    trainer.evaluate(Xt, yt)   # {"loss": ..., "accuracy": ...}

Two execution paths, chosen per model, giving the same numbers:

- **compiled**: a ``Sequential`` of built-in modules (``model.compiled()`` is not None) runs a
  whole epoch of shuffled mini-batches in one C++ call (``Network.train_epoch``, GIL released);
  ``evaluate`` / ``predict`` run batched in C++ too.
- **module by module**: any other model (e.g. one containing a custom Python ``Module`` with a
  numpy ``forward`` / ``backward``) runs ``zero_grad, forward, loss, backward, step`` per batch
  from Python, over exactly the same batches in the same order.

Shuffling: epoch ``e`` visits the rows in the order ``mlpcore._core.permutation(n, epoch_seed(seed, e))``
(a pure function of (n, seed, e)); batches are consecutive runs of ``batch_size`` rows of that
order, the last one possibly shorter. Because the order depends only on (seed, epoch) and the
optimizer state is checkpointed, ``fit(..., resume_from=path)`` continues bit-exactly on the CPU.

What this file is not: checkpoint I/O (``mlpcore.io``), callbacks (``mlpcore.callbacks``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Optional

import numpy as np

from . import _core
from .callbacks import Callback, History
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, _Loss
from .nn import Module
from .optim import Adam, Optimizer
from ._validate import pos_int, seed_or_random

__all__ = ["History", "Trainer", "epoch_seed"]

# Batched inference (evaluate / predict) rows per C++ call: bounds the activation workspace.
_EVAL_BATCH = 1024


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of epoch ``epoch`` (0-based) of a fit with ``seed``: a 64-bit hash of
    (seed, epoch) only, so a resumed run draws the same orders as an uninterrupted one."""
    return _core.epoch_seed(seed, epoch)


def _package():
    """The mlpcore package, looked up at call time (checkpoint functions live in mlpcore.io)."""
    return sys.modules[__package__]


def _stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


# ------------------------------------------------------------------------------------------------
# metrics (numpy; outputs are (n, out), targets as prepared by Trainer._prepare)
# ------------------------------------------------------------------------------------------------

def _accuracy(loss_kind, out: np.ndarray, y: np.ndarray) -> float:
    """CE: share of rows whose arg-max logit is the label. BCE: share of elements where
    (logit > 0) == (target > 0.5) (Keras' binary accuracy, element-wise for several outputs)."""
    if loss_kind == _core.LossKind.cross_entropy:
        return float(np.mean(np.argmax(out, axis=1) == y))
    return float(np.mean((out > 0) == (y > 0.5)))


def _regression_metrics(out: np.ndarray, y: np.ndarray) -> dict:
    """mse, mae over all elements; r2 = mean over output columns of 1 - SS_res / SS_tot (as
    sklearn.metrics.r2_score with multioutput='uniform_average'; a constant column scores 1.0 when
    predicted exactly, else 0.0)."""
    d = out.astype(np.float64) - y
    ss_res = np.sum(d * d, axis=0)
    yc = y - y.mean(axis=0)
    ss_tot = np.sum(yc * yc, axis=0)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.where(ss_res == 0, 1.0, 0.0))
    return {"mse": float(np.mean(d * d)), "mae": float(np.mean(np.abs(d))), "r2": float(np.mean(r2))}


# ------------------------------------------------------------------------------------------------
# progress display
# ------------------------------------------------------------------------------------------------

class _Progress:
    """tqdm display for fit, throttled so that it costs < 5 % even on tiny models.

    Epochs that take at least ``EPOCH_BAR_MIN_S`` get one bar each (over their batches, left on
    screen with the epoch's loss and metrics, as Keras prints one line per epoch). Creating and
    closing a bar costs ~0.1 ms, more than a whole epoch of a tiny model (a [2,16,16,2] net on
    1000 rows trains an epoch in ~0.3 ms), so once an epoch is faster than that the remaining
    epochs share one bar over epochs whose text (last epoch's metrics) refreshes at most every
    ``mininterval`` seconds. On the compiled path the epoch's batches run in chunks (one C++ call
    each) sized so a chunk takes ~``CHUNK_S`` seconds: the bar moves without per-batch calls.

    Measured cost (CPU time per epoch with vs without the display, 1 BLAS thread, a 120-column
    pseudo-terminal, best and median of 5 runs): [2,16,16,2] batch 32 on 1000 rows (0.15 ms
    epochs) +0.3 to +3.4 %; on 100 rows (21 us epochs) +3.0 to +3.8 %; [784,256,256,10] batch
    128 on 20000 rows (per-epoch bars, chunked calls) +0.3 to +1.5 %.
    """

    EPOCH_BAR_MIN_S = 0.5
    CHUNK_S = 0.05
    MININTERVAL = 0.1

    def __init__(self, tqdm, epochs: int, num_batches: int):
        self.tqdm, self.epochs, self.num_batches = tqdm, epochs, num_batches
        self.per_epoch = True  # until an epoch turns out to be short
        self.bar = None
        self.fit_bar = None
        self.last_text = 0.0
        self.chunk = 1  # batches per C++ call while a per-epoch bar is shown (adapted)

    def _new(self, **kw):
        return self.tqdm(file=sys.stdout, mininterval=self.MININTERVAL, dynamic_ncols=True, **kw)

    def epoch_begin(self, epoch: int) -> None:
        if self.per_epoch:
            self.bar = self._new(total=self.num_batches, desc=f"Epoch {epoch + 1}/{self.epochs}", unit="batch",
                                 leave=True)
        elif self.fit_bar is None:
            self.fit_bar = self._new(total=self.epochs, initial=epoch, desc="Training", unit="epoch", leave=True)

    def batches_done(self, k: int, loss: float) -> None:
        if self.bar is not None:
            now = time.monotonic()
            if now - self.last_text >= self.MININTERVAL:
                self.bar.set_postfix_str(f"loss={loss:.4g}", refresh=False)
                self.last_text = now
            self.bar.update(k)

    def epoch_end(self, epoch: int, logs: dict, seconds: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self._text(logs), refresh=False)
            self.bar.close()
            self.bar = None
            if seconds < self.EPOCH_BAR_MIN_S:
                self.per_epoch = False
        else:
            now = time.monotonic()
            if now - self.last_text >= self.MININTERVAL or epoch + 1 == self.epochs:
                self.fit_bar.set_postfix_str(self._text(logs), refresh=False)
                self.last_text = now
            self.fit_bar.update(1)

    @staticmethod
    def _text(logs: dict) -> str:
        return ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if isinstance(v, (float, int)))

    def close(self) -> None:
        for b in (self.bar, self.fit_bar):
            if b is not None:
                b.close()
        self.bar = self.fit_bar = None


def _make_progress(progress: bool, epochs: int, num_batches: int) -> Optional[_Progress]:
    """A display when ``progress`` is on, stdout is a terminal and tqdm is installed (it is a
    core dependency; a --no-deps install without it just trains silently)."""
    if not progress or not _stdout_is_tty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return _Progress(tqdm, epochs, num_batches)


# ------------------------------------------------------------------------------------------------
# Trainer
# ------------------------------------------------------------------------------------------------

class Trainer:
    """Fits ``model`` with ``loss`` and ``optimizer`` on numpy arrays (Keras-shaped).

    model: any ``mlpcore.Module``; a ``Sequential`` of built-in modules uses the compiled path.
    loss: ``CrossEntropyLoss`` (default; int class ids (n,)), ``BCEWithLogitsLoss`` or ``MSELoss``
      (targets shaped like the output, (n,) accepted for one output).
    optimizer: an ``mlpcore.Optimizer`` over ``model.parameters()``; default ``Adam(lr=1e-3)``.
      Create it after moving the model to its device (or pass ``device`` here and let the
      Trainer create the default one).
    batch_size: rows per training step (default for ``fit``); a batch_size larger than the data
      is clipped to the number of rows (one full batch per epoch).
    device: 'cpu' or 'cuda'; the model is moved there if it is not already.
    compiled: None (default) = the compiled path when the model supports it; False = always
      module by module (for teaching and debugging; same numbers, slower); True = require the
      compiled path (ValueError if the model contains a custom module).

    Attributes: ``model``, ``loss``, ``optimizer``, ``batch_size``, ``stop_training`` (a callback
    sets it to end ``fit`` after the current epoch), ``base_lr`` (the learning rate LR schedules
    scale; set when a fit starts from epoch 0 and carried in checkpoints), ``initial_epoch``.
    """

    def __init__(self, model: Module, loss: Optional[_Loss] = None, optimizer: Optional[Optimizer] = None,
                 batch_size: int = 128, device: Optional[str] = None, compiled: Optional[bool] = None):
        if not isinstance(model, Module):
            raise TypeError(f"model: expected a mlpcore Module, got {type(model).__name__}")
        if loss is None:
            loss = CrossEntropyLoss()
        if not isinstance(loss, _Loss):
            raise TypeError(f"loss: expected CrossEntropyLoss, BCEWithLogitsLoss or MSELoss, got {type(loss).__name__}")
        if compiled not in (None, True, False):
            raise ValueError(f"compiled: expected None, True or False, got {compiled!r}")
        if device is not None and model.device != ("cuda" if str(device).startswith("cuda") else device):
            model.to(device)
        if optimizer is None:
            optimizer = Adam(model.parameters(), lr=1e-3)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a mlpcore Optimizer, got {type(optimizer).__name__}")
        optimizer._check_layout()  # RuntimeError if the model moved after the optimizer was made
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.batch_size = pos_int("batch_size", batch_size)
        self.compiled = compiled
        self.stop_training = False
        self.base_lr = optimizer.lr
        self.initial_epoch = 0
        self.history: Optional[History] = None
        if compiled is True and self._net() is None:
            raise ValueError("compiled=True: the model cannot be lowered to the compiled network (it contains a "
                             "custom module, or is not a Sequential of built-in modules)")

    # ----- helpers -----
    def _net(self):
        """The compiled network, or None for the module-by-module path."""
        if self.compiled is False:
            return None
        get = getattr(self.model, "compiled", None)
        return get() if callable(get) else None

    @property
    def _is_classification(self) -> bool:
        return not isinstance(self.loss, MSELoss)

    def _prepare(self, X, y, xname: str = "X", yname: str = "y", net=None):
        """Validate and convert once at the edge: X -> C-contiguous (n, in) of the model dtype;
        y -> int32 class ids (n,) for CE, else (n, out) of the model dtype."""
        if X is None or y is None:
            raise ValueError(f"{xname}, {yname}: both are required")
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        y = np.asarray(y) if not isinstance(y, np.ndarray) else y
        if X.ndim != 2:
            raise ValueError(f"{xname}: expected a 2-D array (n_samples, n_features), got shape {X.shape}")
        n = X.shape[0]
        if n == 0:
            raise ValueError(f"{xname}: empty data (0 rows)")
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"{yname}: expected {n} rows (one per row of {xname}), got shape {y.shape}")
        dt = self.model.dtype
        X = _core._as_matrix(X, xname, dt, net.in_features if net is not None else -1)
        if isinstance(self.loss, CrossEntropyLoss):
            if net is not None:
                y = _core._as_labels(y, yname, n, net.out_features)
            else:
                if y.dtype.kind not in "iu":
                    raise TypeError(f"{yname}: expected integer class ids for CrossEntropyLoss, got dtype {y.dtype}")
                if y.ndim != 1:
                    raise ValueError(f"{yname}: expected class ids of shape ({n},), got {y.shape}")
                if y.min() < 0:
                    raise ValueError(f"{yname}: class ids must be >= 0, got {int(y.min())}")
                if int(y.max()) > np.iinfo(np.int32).max:  # int32 below would wrap it into range
                    raise ValueError(
                        f"{yname}: class id {int(y.max())} is out of range (more than any class index)")
                y = np.ascontiguousarray(y, dtype=np.int32)
        else:
            if y.ndim == 1:
                y = y.reshape(n, 1)
            y = _core._as_matrix(y, yname, dt, net.out_features if net is not None else -1)
        return X, y

    def _iter_batches(self, n: int, bs: int, shuffle: bool, seed: int, epoch: int):
        """(batch index, row indices) for the Python path: the same order as train_epoch."""
        order = _core.permutation(n, epoch_seed(seed, epoch)) if shuffle else None
        for b, start in enumerate(range(0, n, bs)):
            yield b, (order[start:start + bs] if shuffle else slice(start, min(start + bs, n)))

    def _python_step(self, xb, yb, check_finite: bool, epoch: int, batch: int):
        """zero_grad, forward, loss, backward, step. Returns (loss, output)."""
        self.model.zero_grad()
        out = self.model(xb)
        value = self.loss(out, yb)
        if check_finite and not math.isfinite(value):
            raise RuntimeError(
                f"mlpcore: non-finite loss ({value}) at epoch {epoch}, batch {batch}; training stopped before this "
                "batch updated the weights (lower the learning rate or check the data)")
        self.model.backward(self.loss.backward())
        self.optimizer.step()
        return value, out

    # ----- public API -----
    def train_on_batch(self, X, y, check_finite: bool = True) -> float:
        """One training step on the whole of (X, y) (one batch); returns its loss (before the
        update). Compiled path when available. A non-finite loss raises RuntimeError before the
        weights change (unless check_finite=False)."""
        net = self._net()
        X, y = self._prepare(X, y, net=net)
        self.model.train()
        if net is not None:
            net.training = True
            return net.train_epoch(self.optimizer._core, self.loss.kind, X, y, X.shape[0], False, 0, 0,
                                   check_finite, validate=False).loss
        return self._python_step(X, y, check_finite, 0, 0)[0]

    def predict(self, X, batch_size: Optional[int] = None) -> np.ndarray:
        """Raw outputs (n, out) in eval mode (logits for CE/BCE). Batched (default 1024 rows)."""
        net = self._net()
        bs = pos_int("batch_size", batch_size) if batch_size is not None else _EVAL_BATCH
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        if net is not None:
            return net.predict(X, bs)
        X = _core._as_matrix(X, "X", self.model.dtype, -1)
        was = self.model.training
        self.model.eval()
        try:
            outs = [np.asarray(self.model(X[i:i + bs])) for i in range(0, X.shape[0], bs)]
        finally:
            self.model.train(was)
        return np.concatenate(outs, axis=0)

    def predict_proba(self, X, batch_size: Optional[int] = None) -> np.ndarray:
        """Class probabilities: softmax of the logits (CrossEntropyLoss, rows sum to 1) or
        sigmoid (BCEWithLogitsLoss, per output). ValueError for MSELoss."""
        if isinstance(self.loss, MSELoss):
            raise ValueError("predict_proba: needs a classification loss (CrossEntropyLoss or BCEWithLogitsLoss), "
                             "the trainer uses MSELoss; use predict")
        z = self.predict(X, batch_size)
        if isinstance(self.loss, BCEWithLogitsLoss):
            out = np.empty_like(z)
            pos = z >= 0
            out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
            ez = np.exp(z[~pos])
            out[~pos] = ez / (1.0 + ez)
            return out
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def evaluate(self, X, y, batch_size: Optional[int] = None) -> dict:
        """Loss and metrics in eval mode: {"loss", "accuracy"} for CE / BCE, {"loss", "mse",
        "mae", "r2"} for MSE. Python floats."""
        net = self._net()
        X, y = self._prepare(X, y, net=net)
        return self._evaluate_prepared(X, y, net, batch_size)

    def _evaluate_prepared(self, X, y, net, batch_size=None) -> dict:
        bs = pos_int("batch_size", batch_size) if batch_size is not None else _EVAL_BATCH
        if net is not None and isinstance(self.loss, CrossEntropyLoss):
            value, correct = net.evaluate(self.loss.kind, X, y, bs)
            return {"loss": float(value), "accuracy": correct / X.shape[0]}
        out = self.predict(X, bs)
        value, _ = _core.loss_forward_backward(self.loss.kind, out, y, out.dtype)
        logs = {"loss": float(value)}
        if self._is_classification:
            logs["accuracy"] = _accuracy(self.loss.kind, out, y)
        else:
            logs.update(_regression_metrics(out, y))
        return logs

    def fit(self, X, y, epochs: int = 10, batch_size: Optional[int] = None, validation_data=None,
            validation_split: Optional[float] = None, shuffle: bool = True, seed: Optional[int] = 0,
            callbacks: Optional[Sequence[Callback]] = None, progress: bool = True,
            resume_from: Optional[str] = None, check_finite: bool = True, train_metrics: bool = False) -> History:
        """Train for ``epochs`` epochs; returns a :class:`History`.

        X (n, in) float32/float64 (converted to the model dtype); y: int class ids (n,) for
        CrossEntropyLoss, targets (n, out) (or (n,) for one output) for MSE/BCE.
        batch_size: default the Trainer's; clipped to n. validation_data=(Xv, yv), or
        validation_split=f in (0, 1): the *last* f of the rows (before shuffling) are held out,
        as in Keras. shuffle/seed: epoch e visits rows in the order permutation(n,
        epoch_seed(seed, e)); seed=None draws one at random. callbacks: ``mlpcore.callbacks``
        objects. progress: tqdm display (only when stdout is a terminal; see ``_Progress``).
        resume_from: a checkpoint written by ``mlpcore.save(model, path, optimizer=..., epoch=k)``
        (e.g. by ModelCheckpoint): its weights and optimizer state are loaded and training
        continues at epoch k up to ``epochs`` (``epochs`` counts from the start, as Keras'
        initial_epoch); on the CPU the result is bit-identical to an uninterrupted run with the
        same seed (Dropout included: the checkpoint holds each Dropout's RNG state). Any model
        whose parameter names match loads, custom Python modules included.
        check_finite: stop with RuntimeError naming epoch and batch at the first non-finite batch
        loss, before that batch updates the weights. (NaN/Inf inputs are refused at the edge
        regardless, unless ``mlpcore.set_check_finite(False)``; module by module, every module
        checks its inputs and gradients that way too, so there check_finite=False alone lets a
        non-finite loss through but the next module edge raises ValueError.)
        train_metrics: which training metrics History records besides "loss".
          False (default): the ones that come free with training, running over the epoch as
            Keras reports them: "accuracy" for CrossEntropyLoss (each batch's arg-max counted
            from its own forward pass, before its update) and "mse" for MSELoss (= "loss");
            none for BCEWithLogitsLoss.
          True: all of them ("accuracy", or "mse", "mae", "r2"), measured by one eval-mode pass
            over the training data at the end of each epoch. That pass is a forward pass over
            the training set: measured +25 % epoch time for a [2,16,16,2] net, +40 % for
            [784,256,256,10] (batch 128).

        History: ``history.history`` = {"loss": [...], training metrics (above), "val_loss",
        "val_accuracy" | "val_mse", "val_mae", "val_r2" (with validation data, always all of
        them, after the epoch)} and ``history.epoch`` = [epoch indices]. "loss" is the mean of the
        epoch's batch losses (each taken before its update, weighted by batch rows; as Keras).
        Callbacks may add more keys (LR schedules add "lr").
        """
        epochs = pos_int("epochs", epochs)
        bs = pos_int("batch_size", batch_size if batch_size is not None else self.batch_size)
        seed = seed_or_random(seed)
        callbacks = list(callbacks) if callbacks is not None else []
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}]: expected a mlpcore.callbacks.Callback, got {type(cb).__name__}")
        if validation_data is not None and validation_split is not None:
            raise ValueError("validation_data, validation_split: pass one of them, not both")
        net = self._net()

        # --- data, converted once ---
        X, y = self._prepare(X, y, net=net)
        val = None
        if validation_split is not None:
            if isinstance(validation_split, bool) or not isinstance(validation_split, (float, int, np.floating)) \
                    or not (0.0 < float(validation_split) < 1.0):
                raise ValueError(f"validation_split: expected a fraction in (0, 1), got {validation_split!r}")
            split = int(X.shape[0] * (1.0 - float(validation_split)))
            if split < 1 or split >= X.shape[0]:
                raise ValueError(f"validation_split: {validation_split} of {X.shape[0]} rows leaves an empty "
                                 "training or validation set")
            val = (X[split:], y[split:])
            X, y = X[:split], y[:split]
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)):
                raise TypeError(f"validation_data: expected a pair (X_val, y_val), got {type(validation_data).__name__}")
            if len(validation_data) != 2:
                raise ValueError(f"validation_data: expected a pair (X_val, y_val), got {len(validation_data)} items")
            val = self._prepare(validation_data[0], validation_data[1], "X_val", "y_val", net=net)
        n = X.shape[0]
        bs = min(bs, n)
        num_batches = (n + bs - 1) // bs

        # --- resume ---
        self.initial_epoch = 0
        self.base_lr = self.optimizer.lr
        if resume_from is not None:
            self._resume(resume_from)

        # --- callbacks ---
        history = History()
        cbs = callbacks + [history]
        params = {"epochs": epochs, "steps": num_batches, "batch_size": bs, "samples": n,
                  "initial_epoch": self.initial_epoch}
        for cb in cbs:
            cb.set_trainer(self, params)
        per_batch = any(cb._has_batch_hooks() for cb in cbs)
        self.stop_training = False
        self.history = history

        was_training = self.model.training
        prog = _make_progress(progress, epochs, num_batches)
        finished = False
        try:
            self.model.train()  # once: it walks the module tree
            for cb in cbs:
                cb.on_train_begin({})
            for epoch in range(self.initial_epoch, epochs):
                if self.stop_training:
                    break
                logs: dict = {}
                for cb in cbs:
                    cb.on_epoch_begin(epoch, logs)
                if prog is not None:
                    prog.epoch_begin(epoch)
                t0 = time.perf_counter()
                if not self.model.training:  # a callback switched to eval mode: back to training
                    self.model.train()
                if net is not None:
                    if not net.training:
                        net.training = True
                    loss_value, correct = self._epoch_compiled(net, X, y, bs, num_batches, shuffle, seed, epoch, check_finite,
                                                      cbs if per_batch else None, prog)
                else:
                    loss_value, correct = self._epoch_python(X, y, bs, shuffle, seed, epoch, check_finite,
                                                    cbs if per_batch else None, prog)
                logs = {"loss": loss_value}
                if train_metrics:
                    ev = self._evaluate_prepared(X, y, net)
                    logs.update({k: v for k, v in ev.items() if k != "loss"})
                elif isinstance(self.loss, CrossEntropyLoss):
                    logs["accuracy"] = correct / n
                elif isinstance(self.loss, MSELoss):
                    logs["mse"] = loss_value
                if val is not None:
                    logs.update({"val_" + k: v for k, v in self._evaluate_prepared(val[0], val[1], net).items()})
                for cb in cbs:
                    cb.on_epoch_end(epoch, logs)
                if prog is not None:
                    prog.epoch_end(epoch, logs, time.perf_counter() - t0)
            finished = True
        finally:
            if prog is not None:
                prog.close()
            self.model.train(was_training)
            # on_train_end always runs (also when fit raises) so callbacks release files.
            for cb in cbs:
                if finished:
                    cb.on_train_end({})
                else:
                    try:
                        cb.on_train_end({})
                    except Exception:  # noqa: BLE001, S110 - fit's own error is the one to report
                        pass
        return history

    def _epoch_compiled(self, net, X, y, bs, num_batches, shuffle, seed, epoch, check_finite, cbs, prog):
        """One epoch through Network.train_epoch: one call, or one per batch when a callback has
        batch hooks, or one per adaptive chunk of batches while a per-epoch bar is shown. The
        calls cover the same batches in the same order, so the numbers are identical.
        Returns (mean batch loss, correct arg-max count (CE))."""
        opt, kind, s = self.optimizer._core, self.loss.kind, epoch_seed(seed, epoch)
        n = X.shape[0]
        if cbs is None and (prog is None or not prog.per_epoch):
            r = net.train_epoch(opt, kind, X, y, bs, shuffle, s, epoch, check_finite, validate=False)
            return r.loss, r.correct
        total, b, correct = 0.0, 0, 0
        while b < num_batches:
            if cbs is not None:
                e = b + 1
                blogs = {"batch": b, "size": min(bs, n - b * bs)}
                for cb in cbs:
                    cb.on_batch_begin(b, blogs)
            else:
                e = min(num_batches, b + prog.chunk)
            t0 = time.perf_counter()
            r = net.train_epoch(opt, kind, X, y, bs, shuffle, s, epoch, check_finite, batch_begin=b, batch_end=e,
                                validate=False)
            value = r.loss
            rows = min(e * bs, n) - b * bs
            total += value * rows
            correct += r.correct
            if cbs is not None:
                blogs = {"batch": b, "size": rows, "loss": value}
                for cb in cbs:
                    cb.on_batch_end(b, blogs)
            elif time.perf_counter() - t0 < prog.CHUNK_S:
                prog.chunk = min(2 * prog.chunk, num_batches)
            if prog is not None:
                prog.batches_done(e - b, total / (min(e * bs, n)))
            b = e
        return total / n, correct

    def _epoch_python(self, X, y, bs, shuffle, seed, epoch, check_finite, cbs, prog):
        """One epoch module by module, over the same batches as train_epoch.
        Returns (mean batch loss, correct arg-max count (CE))."""
        n = X.shape[0]
        total, done, correct = 0.0, 0, 0
        count = isinstance(self.loss, CrossEntropyLoss)
        for b, idx in self._iter_batches(n, bs, shuffle, seed, epoch):
            xb, yb = X[idx], y[idx]
            rows = xb.shape[0]
            if cbs is not None:
                for cb in cbs:
                    cb.on_batch_begin(b, {"batch": b, "size": rows})
            value, out = self._python_step(xb, yb, check_finite, epoch, b)
            if count:
                correct += int(np.count_nonzero(np.argmax(out, axis=1) == yb))
            total += value * rows
            done += rows
            if cbs is not None:
                for cb in cbs:
                    cb.on_batch_end(b, {"batch": b, "size": rows, "loss": value})
            if prog is not None:
                prog.batches_done(1, total / done)
        return total / n, correct

    def _resume(self, path) -> None:
        """Load weights, optimizer state and epoch count from the checkpoint at ``path``."""
        # Refuse a checkpoint without optimizer state before any weight is overwritten (reads the
        # header only; load_checkpoint reads the file again below, once per run)
        from . import io as _io
        meta = _io._read_metadata(path)
        if "optimizer" not in meta:
            raise ValueError(f"resume_from: checkpoint {path!r} has no optimizer state; save it with "
                             "mlpcore.save(model, path, optimizer=opt, epoch=...) (ModelCheckpoint does)")
        # weights by name into the model as it is (custom Python modules included; a mismatch of
        # names or shapes raises ValueError before anything is written) and each Dropout's RNG state
        try:
            ck = _package().load_checkpoint(path, model=self.model)
        except ValueError as e:
            raise ValueError(f"resume_from: {e}") from None
        self.optimizer.load_state_dict(ck["optimizer_state"])
        self.initial_epoch = int(ck.get("epoch") or 0)
        extra = ck.get("extra") or {}
        self.base_lr = float(extra.get("base_lr", self.optimizer.lr)) if isinstance(extra, dict) else self.optimizer.lr

    def __repr__(self) -> str:
        path = "compiled" if self._net() is not None else "module-by-module"
        return (f"Trainer(loss={self.loss!r}, optimizer={self.optimizer!r}, batch_size={self.batch_size}, "
                f"path={path})")
