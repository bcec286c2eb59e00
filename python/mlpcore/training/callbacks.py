"""Callbacks for :meth:`mlpcore.Trainer.fit` (Keras-shaped); also importable as ``mlpcore.callbacks``.

    from mlpcore.callbacks import EarlyStopping, ModelCheckpoint, StepLR
    trainer.fit(X, y, epochs=100, validation_split=0.1,
                callbacks=[EarlyStopping(patience=5, restore_best_weights=True),
                           ModelCheckpoint("best.safetensors", save_best_only=True), StepLR(30, 0.1)])

Hooks, in order: ``on_train_begin(logs)``; per epoch ``on_epoch_begin(epoch, logs)``, per batch
``on_batch_begin(batch, logs)`` / ``on_batch_end(batch, logs)``, then ``on_epoch_end(epoch,
logs)``; ``on_train_end(logs)`` (always called, also when fit raises, so files get closed).
``epoch`` is 0-based. Epoch-end logs hold "loss" and the metrics ("accuracy", or "mse", "mae",
"r2"), their "val_" versions when there is validation data, and whatever earlier callbacks
added ("lr"). Batch logs hold "batch", "size" and (at the end) "loss". A callback reaches the
trainer as ``self.trainer`` (``self.model``, ``self.params``) and stops training by setting
``self.trainer.stop_training = True`` (effective after the current epoch).

Cost of batch hooks: on the compiled path a whole epoch normally runs in one C++ call. A
callback that overrides ``on_batch_begin`` or ``on_batch_end`` makes the trainer return to
Python around every batch (one C++ call per batch plus the hook calls; same numbers). That is
nearly free for real layer sizes and adds a Python round trip per batch for tiny nets, so prefer
epoch hooks (the built-in callbacks use only epoch hooks, except the per-batch schedules
OneCycleLR and LinearWarmup). The module-by-module path runs per batch anyway.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Optional

from .._validate import nonneg, pos_int

__all__ = [
    "CSVLogger", "Callback", "CosineAnnealingLR", "EarlyStopping", "ExponentialLR", "History", "LRScheduler",
    "LinearWarmup", "ModelCheckpoint", "OneCycleLR", "ReduceLROnPlateau", "StepLR", "TensorBoard", "TerminateOnNaN",
]


class Callback:
    """Base class: override the hooks you need. ``trainer``, ``model`` and ``params`` (epochs,
    steps, batch_size, samples, initial_epoch) are set when ``fit`` starts.

    In a distributed fit every rank runs every callback with the same logs (reduced over ranks),
    so decisions (stop, change the lr) agree; callbacks that write files do so on rank 0 only
    (``writes_files``)."""

    trainer = None
    model = None
    params: Optional[dict] = None

    def set_trainer(self, trainer, params: dict) -> None:
        self.trainer, self.model, self.params = trainer, trainer.model, dict(params)

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        pass

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        pass

    def __getstate__(self) -> dict:
        """Pickled and copied without the trainer and model it was attached to (the next fit
        attaches it again): a History pickles as its numbers, not as a whole training setup."""
        state = dict(self.__dict__)
        state.pop("trainer", None)
        state.pop("model", None)
        return state

    @property
    def writes_files(self) -> bool:
        """False on the ranks other than 0 of a distributed fit (``Trainer.is_main``)."""
        return getattr(self.trainer, "is_main", True)

    def _has_batch_hooks(self) -> bool:
        """True if a subclass overrides a batch hook (then fit steps batch by batch)."""
        t = type(self)
        return t.on_batch_begin is not Callback.on_batch_begin or t.on_batch_end is not Callback.on_batch_end


class History(Callback):
    """What ``fit`` returns: ``history`` = {metric name: [value per epoch]} and ``epoch`` =
    [epoch indices], as in Keras."""

    def __init__(self):
        self.history: dict = {}
        self.epoch: list = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


# ------------------------------------------------------------------------------------------------
# monitoring helpers
# ------------------------------------------------------------------------------------------------

def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("r2")) else "min"
    return mode


def _monitored(owner: str, monitor: str, logs: Optional[dict]) -> float:
    logs = logs or {}
    if monitor not in logs:
        raise ValueError(f"{owner}: monitor {monitor!r} is not in the epoch logs (available: {sorted(logs)}); "
                         "pass validation data to fit or monitor a training metric such as 'loss'")
    return float(logs[monitor])


def _better(mode: str, current: float, best: float, min_delta: float) -> bool:
    if math.isnan(current):
        return False
    return current < best - min_delta if mode == "min" else current > best + min_delta


# ------------------------------------------------------------------------------------------------
# stopping and checkpoints
# ------------------------------------------------------------------------------------------------

class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    mode: 'min', 'max' or 'auto' (max for accuracy / r2, else min). restore_best_weights: when
    training ends (stopped early or not) the weights of the best epoch are copied back, with the
    buffers (BatchNorm's running statistics), as Keras restores its non-trainable weights.
    After fit: ``stopped_epoch`` (0 if it did not stop), ``best``, ``best_epoch``.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, mode: str = "auto",
                 restore_best_weights: bool = False):
        self.monitor = str(monitor)
        self.min_delta = abs(nonneg("min_delta", min_delta))
        self.patience = nonneg("patience", patience, integer=True)
        self.mode = _mode(self.monitor, mode)
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored("EarlyStopping", self.monitor, logs)
        if _better(self.mode, current, self.best, self.min_delta) or self.best_epoch < 0 and not math.isnan(current):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()  # copies of the parameters and buffers
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


def _save(path, trainer, epochs_done: int) -> None:
    """A checkpoint of the model and optimizer state; base_lr rides along in ``extra`` so a
    resumed fit continues the same LR schedule."""
    from ..io import save  # checkpoint I/O is needed only when a checkpoint is written

    save(trainer.model, path, optimizer=trainer.optimizer, epoch=epochs_done, extra={"base_lr": float(trainer.base_lr)})


class ModelCheckpoint(Callback):
    """Save the model and optimizer state (``mlpcore.save``, safetensors, atomic) after epochs.

    path: may contain ``{epoch}`` (1-based, the number of epochs completed) and log keys, e.g.
    ``"ck-{epoch:03d}-{val_loss:.3f}.safetensors"``. save_best_only: save only when ``monitor``
    improves (mode as EarlyStopping); otherwise every epoch. The saved epoch count lets
    ``fit(..., resume_from=path)`` continue from there.
    """

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"):
        self.path = os.fspath(path)
        self.monitor = str(monitor)
        self.save_best_only = bool(save_best_only)
        self.mode = _mode(self.monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list = []  # paths written, in order

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = _monitored("ModelCheckpoint", self.monitor, logs)
            if not _better(self.mode, current, self.best, 0.0):
                return
            self.best = current
        path = self.path.format(epoch=epoch + 1, **logs)
        if self.writes_files:
            _save(path, self.trainer, epoch + 1)
        self.saved.append(path)


class TerminateOnNaN(Callback):
    """Stop training (without an exception) after an epoch whose loss or val_loss is NaN or Inf.
    Works on the epoch logs, so it adds no per-batch cost; with ``fit(check_finite=True)`` (the
    default) a non-finite batch loss already raises RuntimeError before the weights are
    corrupted: use this with ``check_finite=False``. ``stopped_epoch`` is set when it fires."""

    stopped_epoch: Optional[int] = None

    def on_epoch_end(self, epoch, logs=None):
        for k in ("loss", "val_loss"):
            v = (logs or {}).get(k)
            if v is not None and not math.isfinite(v):
                self.stopped_epoch = epoch
                self.trainer.stop_training = True


# ------------------------------------------------------------------------------------------------
# learning-rate schedules (set optimizer.lr at the start of every epoch)
# ------------------------------------------------------------------------------------------------

class LRScheduler(Callback):
    """Base of the closed-form schedules: at the start of epoch e the optimizer's lr becomes
    ``lr_at(e, base_lr)``, PyTorch's per-epoch semantics (epoch 0 trains at base_lr).

    base_lr: default the trainer's ``base_lr`` (the optimizer's lr when the fit started from
    epoch 0; on resume it comes from the checkpoint's ``extra["base_lr"]``, which ModelCheckpoint
    writes, else the restored optimizer's lr), so a resumed run follows the same schedule. Epoch logs get "lr" (the lr used during the epoch).
    """

    def __init__(self, base_lr: Optional[float] = None):
        if base_lr is not None and not (isinstance(base_lr, (int, float)) and base_lr > 0 and math.isfinite(base_lr)):
            raise ValueError(f"base_lr: expected a positive number or None, got {base_lr!r}")
        self.base_lr = base_lr

    def lr_at(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def on_epoch_begin(self, epoch, logs=None):
        base = self.base_lr if self.base_lr is not None else self.trainer.base_lr
        self.trainer.optimizer.lr = self.lr_at(epoch, base)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.trainer.optimizer.lr


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size) (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, step_size: int, gamma: float = 0.1, base_lr: Optional[float] = None):
        super().__init__(base_lr)
        self.step_size = pos_int("step_size", step_size)
        if not (isinstance(gamma, (int, float)) and 0 < gamma and math.isfinite(gamma)):
            raise ValueError(f"gamma: expected a positive number, got {gamma!r}")
        self.gamma = float(gamma)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch (torch.optim.lr_scheduler.ExponentialLR)."""

    def __init__(self, gamma: float, base_lr: Optional[float] = None):
        super().__init__(base_lr)
        if not (isinstance(gamma, (int, float)) and 0 < gamma and math.isfinite(gamma)):
            raise ValueError(f"gamma: expected a positive number, got {gamma!r}")
        self.gamma = float(gamma)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (the closed form of
    torch.optim.lr_scheduler.CosineAnnealingLR; periodic past T_max); 1e-12 * base_lr where the
    schedule reaches 0 (see lr_at)."""

    def __init__(self, T_max: int, eta_min: float = 0.0, base_lr: Optional[float] = None):
        super().__init__(base_lr)
        self.T_max, self.eta_min = pos_int("T_max", T_max), nonneg("eta_min", eta_min)

    def lr_at(self, epoch, base_lr):
        lr = self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        # With eta_min = 0 the schedule touches 0 at epoch = T_max; optimizers require lr > 0, so
        # that epoch runs at 1e-12 * base_lr (no visible update, as PyTorch's lr = 0).
        return lr if lr > 0 else 1e-12 * base_lr


class ReduceLROnPlateau(Callback):
    """Multiply the lr by ``factor`` when ``monitor`` has not improved (by more than ``min_delta``)
    for ``patience`` epochs; then wait ``cooldown`` epochs; never below ``min_lr`` (Keras'
    semantics). Epoch logs get "lr"."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        if not (isinstance(factor, (int, float)) and 0 < factor < 1):
            raise ValueError(f"factor: expected a value in (0, 1), got {factor!r}")
        self.monitor, self.factor = str(monitor), float(factor)
        self.patience = nonneg("patience", patience, integer=True)
        self.mode = _mode(self.monitor, mode)
        self.min_delta = nonneg("min_delta", min_delta)
        self.cooldown = nonneg("cooldown", cooldown, integer=True)
        self.min_lr = nonneg("min_lr", min_lr)

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored("ReduceLROnPlateau", self.monitor, logs)
        opt = self.trainer.optimizer
        if logs is not None:
            logs["lr"] = opt.lr
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _better(self.mode, current, self.best, self.min_delta):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and opt.lr > self.min_lr:
                new_lr = max(opt.lr * self.factor, self.min_lr)
                if new_lr > 0:
                    opt.lr = new_lr
                self.cooldown_counter = self.cooldown
                self.wait = 0


# ------------------------------------------------------------------------------------------------
# per-batch schedules (set optimizer.lr before every batch, as PyTorch's scheduler.step() per batch)
# ------------------------------------------------------------------------------------------------

def _global_step(cb: Callback, batch: int) -> int:
    """Batches run before this one since the fit started from epoch 0 (a resumed fit continues the
    count from its initial epoch), i.e. PyTorch's ``scheduler.last_epoch`` for this batch."""
    return cb._epoch * cb.params["steps"] + batch


class OneCycleLR(Callback):
    """The 1cycle policy, as ``torch.optim.lr_scheduler.OneCycleLR`` stepped after every batch:
    the lr rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of the
    ``total_steps`` batches, then anneals ("cos" or "linear") to ``max_lr / div_factor /
    final_div_factor`` (``three_phase``: back to the initial lr first, then down). With
    ``cycle_momentum`` the momentum (SGD, RMSprop; Adam's beta1) moves the other way, between
    ``max_momentum`` and ``base_momentum``.

    total_steps: default ``epochs * steps_per_epoch``, each defaulting to the fit's. Stepping past
    total_steps raises ValueError, as PyTorch. Batch hooks: the compiled epoch returns to Python
    once per batch. A resumed fit continues the schedule (the step is epoch * steps + batch).
    Epoch logs get "lr" (the last batch's).
    """

    def __init__(self, max_lr: float, epochs: Optional[int] = None, steps_per_epoch: Optional[int] = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", div_factor: float = 25.0,
                 final_div_factor: float = 1e4, cycle_momentum: bool = True, base_momentum: float = 0.85,
                 max_momentum: float = 0.95, three_phase: bool = False, total_steps: Optional[int] = None):
        if not (isinstance(max_lr, (int, float)) and max_lr > 0 and math.isfinite(max_lr)):
            raise ValueError(f"max_lr: expected a positive number, got {max_lr!r}")
        self.max_lr = float(max_lr)
        self.epochs = None if epochs is None else pos_int("epochs", epochs)
        self.steps_per_epoch = None if steps_per_epoch is None else pos_int("steps_per_epoch", steps_per_epoch)
        self.total_steps = None if total_steps is None else pos_int("total_steps", total_steps)
        if not (isinstance(pct_start, (int, float)) and 0 <= pct_start <= 1):
            raise ValueError(f"pct_start: expected a number in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy: expected 'cos' or 'linear', got {anneal_strategy!r}")
        self.pct_start, self.anneal_strategy = float(pct_start), anneal_strategy
        for name, v in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name}: expected a positive number, got {v!r}")
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)
        self.three_phase = bool(three_phase)

    def on_train_begin(self, logs=None):
        total = self.total_steps
        if total is None:
            total = (self.epochs or self.params["epochs"]) * (self.steps_per_epoch or self.params["steps"])
        self._total = total
        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        hi_m, lo_m = self.max_momentum, self.base_momentum
        p = self.pct_start * total
        # (end step, start lr, end lr, start momentum, end momentum), as PyTorch's _schedule_phases
        if self.three_phase:
            self._phases = [(p - 1, initial, self.max_lr, hi_m, lo_m), (2 * p - 2, self.max_lr, initial, lo_m, hi_m),
                            (total - 1, initial, low, hi_m, hi_m)]
        else:
            self._phases = [(p - 1, initial, self.max_lr, hi_m, lo_m), (total - 1, self.max_lr, low, lo_m, hi_m)]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def values_at(self, step: int) -> tuple:
        """(lr, momentum) of batch ``step`` (0-based over the whole schedule)."""
        if step > self._total:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the specified number of total steps is "
                             f"{self._total} (pass epochs / steps_per_epoch / total_steps that cover the fit)")
        begin = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
            if step <= end or i == len(self._phases) - 1:
                pct = (step - begin) / (end - begin)
                return self._anneal(lr0, lr1, pct), self._anneal(m0, m1, pct)
            begin = end
        raise AssertionError("unreachable")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_begin(self, batch, logs=None):
        lr, momentum = self.values_at(_global_step(self, batch))
        opt = self.trainer.optimizer
        opt.lr = lr if lr > 0 else 1e-12 * self.max_lr  # optimizers need lr > 0 (PyTorch's lr would be ~0)
        if self.cycle_momentum:
            opt.momentum = momentum

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.trainer.optimizer.lr


class LinearWarmup(Callback):
    """Linear learning-rate warm-up in front of any schedule, stepped per batch: for the first
    ``warmup_steps`` batches the lr is the schedule's times a factor rising linearly from
    ``start_factor`` to ``end_factor`` (``torch.optim.lr_scheduler.LinearLR(start_factor,
    end_factor, total_iters=warmup_steps)`` stepped after every batch); afterwards the factor stays
    at end_factor.

    schedule: a per-epoch LR callback (StepLR, ExponentialLR, CosineAnnealingLR,
    ReduceLROnPlateau, ...) or a per-batch one (OneCycleLR); this callback drives it (do not pass
    it to fit as well). None: the factor scales the trainer's base_lr. The result equals PyTorch's
    LinearLR chained with that schedule (both stepping, LinearLR per batch, the schedule as it
    steps). Epoch logs get "lr" (the last batch's).
    """

    def __init__(self, warmup_steps: int, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 schedule: Optional[Callback] = None):
        self.warmup_steps = pos_int("warmup_steps", warmup_steps)
        for name, v in (("start_factor", start_factor), ("end_factor", end_factor)):
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{name}: expected a number in (0, 1], got {v!r}")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        if schedule is not None and not isinstance(schedule, Callback):
            raise TypeError(f"schedule: expected a mlpcore.callbacks LR callback or None, got {type(schedule).__name__}")
        self.schedule = schedule

    def factor(self, step: int) -> float:
        """The warm-up factor of batch ``step`` (0-based since the start of training)."""
        t = min(step, self.warmup_steps)
        return self.start_factor + (self.end_factor - self.start_factor) * t / self.warmup_steps

    def set_trainer(self, trainer, params):
        super().set_trainer(trainer, params)
        if self.schedule is not None:
            self.schedule.set_trainer(trainer, params)

    def on_train_begin(self, logs=None):
        if self.schedule is not None:
            self.schedule.on_train_begin(logs)

    def on_train_end(self, logs=None):
        if self.schedule is not None:
            self.schedule.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.schedule is not None:
            self.schedule.on_epoch_begin(epoch, logs)
            self._lr = self.trainer.optimizer.lr  # the schedule's lr for this epoch
        else:
            self._lr = self.trainer.base_lr

    def on_batch_begin(self, batch, logs=None):
        opt = self.trainer.optimizer
        if self.schedule is not None and self.schedule._has_batch_hooks():
            self.schedule.on_batch_begin(batch, logs)
            self._lr = opt.lr
        opt.lr = self._lr * self.factor(_global_step(self, batch))

    def on_batch_end(self, batch, logs=None):
        if self.schedule is not None and self.schedule._has_batch_hooks():
            self.schedule.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        opt = self.trainer.optimizer
        used = opt.lr
        if self.schedule is not None:
            opt.lr = self._lr  # the schedule sees (and may change) its own lr, not the warmed one
            self.schedule.on_epoch_end(epoch, logs)
        if logs is not None:
            logs["lr"] = used


# ------------------------------------------------------------------------------------------------
# logging
# ------------------------------------------------------------------------------------------------

class CSVLogger(Callback):
    """One row per epoch: ``epoch`` (0-based) and every log key, columns fixed by the first
    epoch. append=True continues an existing file (no second header)."""

    def __init__(self, path, separator: str = ",", append: bool = False):
        self.path, self.separator, self.append = os.fspath(path), str(separator), bool(append)
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        if not self.writes_files:
            return
        exists = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        # kept open across epochs (one flush per row); closed in on_train_end, which fit always calls
        self._file = open(self.path, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._keys = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:  # not the rank that writes
            return
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if not self._header_written:
                self._writer.writerow(["epoch"] + self._keys)
        self._writer.writerow([epoch] + [logs.get(k, "") for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoard(Callback):
    """Scalars for TensorBoard through tensorboardX (``pip install 'mlpcore[tensorboard]'``):
    per epoch, tag ``<metric>/train`` and ``<metric>/val`` (so training and validation curves
    share one chart) and ``lr``, at step = epoch (0-based). Then ``tensorboard --logdir
    <log_dir>``."""

    def __init__(self, log_dir="runs"):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError("TensorBoard callback needs tensorboardX: pip install 'mlpcore[tensorboard]' "
                              "(or pip install tensorboardX)") from e
        self._writer_cls = SummaryWriter
        self.log_dir = os.fspath(log_dir)
        self.writer = None

    def on_train_begin(self, logs=None):
        if self.writes_files:
            self.writer = self._writer_cls(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is None:  # not the rank that writes
            return
        for k, v in (logs or {}).items():
            if k.startswith("val_"):
                tag = k[4:] + "/val"
            elif k == "lr":
                tag = "lr"
            else:
                tag = k + "/train"
            self.writer.add_scalar(tag, float(v), epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
