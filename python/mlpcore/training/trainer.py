"""Trainer: Keras-shaped training on top of the compiled core (``fit``, ``evaluate``, ``predict``).

    trainer = mc.Trainer(model, loss=mc.CrossEntropyLoss(), optimizer=opt, batch_size=128)
    history = trainer.fit(X, y, epochs=10, validation_split=0.1, callbacks=[...])
    trainer.evaluate(Xt, yt)   # {"loss": ..., "accuracy": ...}

Two execution paths, chosen per model, giving the same numbers:

- **compiled**: a ``Sequential`` of built-in modules (``model.compiled()`` is not None) runs a
  whole epoch of shuffled mini-batches in one C++ call (``Network.train_epoch``, GIL released).
- **module by module**: any other model (e.g. one containing a custom Python ``Module`` with a
  numpy ``forward`` / ``backward``) runs ``zero_grad, forward, loss, backward, step`` per batch
  from Python, over exactly the same batches in the same order.

One epoch runner (``Trainer._run_epoch``) drives both paths; ``fit`` and the scikit-learn
estimators (``mlpcore.sklearn``) call it, so there is one training loop. Inputs are prepared
once per call by ``training.data``; eval-mode outputs come from the one predict path; metrics
from ``training.metrics``.

Sample weights (``fit``, ``evaluate``, ``train_on_batch``, ``_run_epoch``: ``sample_weight`` (n,)):
each batch's loss is the weighted mean ``sum(w v) / sum(w n)`` of ``mlpcore.losses`` (scikit-learn's
MLP normalisation within a batch); the weights are gathered with the rows, through the same
permutation. A batch whose weights sum to 0 has loss 0 and leaves the gradient 0.

Data parallel (``distributed=True``, under ``mpiexec``): each rank runs its rows of every global
batch; the compiled epoch all-reduces the gradients, fit reduces the logs (``training.parallel``).

Shuffling: epoch ``e`` visits the rows in the order ``mlpcore._core.permutation(n, epoch_seed(seed, e))``
(a pure function of (n, seed, e)); batches are consecutive runs of ``batch_size`` rows of that
order, the last one possibly shorter. Because the order depends only on (seed, epoch) and the
optimizer state is checkpointed, ``fit(..., resume_from=path)`` continues bit-exactly on the CPU.

Not here: checkpoint I/O (``mlpcore.io``), callbacks, the progress display (``training``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import NamedTuple, Optional, Union

import numpy as np

from .. import _core
from .. import distributed as dist
from .._validate import pos_int, positive, seed_or_random
from ..losses import CrossEntropyLoss, _Loss
from ..nn import Module
from ..optim import Adam, Optimizer
from . import data, parallel
from . import metrics as metrics_mod
from . import progress as _progress
from ..nn.inference import EVAL_BATCH, predict as _predict
from .callbacks import Callback, History

__all__ = ["EpochResult", "History", "Trainer", "epoch_seed"]

_CE = _core.LossKind.cross_entropy


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of epoch ``epoch`` (0-based) of a fit with ``seed``: a 64-bit hash of
    (seed, epoch) only (the core's), so a resumed run draws the same orders as an uninterrupted one."""
    return _core.epoch_seed(seed, epoch)


class EpochResult(NamedTuple):
    """What one epoch (or a range of its batches) measured, as the core's ``EpochResult``:
    ``loss`` the mean batch loss weighted by rows (each taken before its batch's update),
    ``correct`` the arg-max hits (cross-entropy; 0 otherwise), ``rows`` the rows run."""

    loss: float
    correct: int
    rows: int


class Trainer:
    """Fits ``model`` with ``loss`` and ``optimizer`` on numpy arrays (Keras-shaped).

    model: any ``mlpcore.Module``; a ``Sequential`` of built-in modules uses the compiled path.
    loss: any ``mlpcore.losses`` loss: ``CrossEntropyLoss`` (default; int class ids (n,)),
      ``BCEWithLogitsLoss``, ``MSELoss``, ``L1Loss``, ``HuberLoss``, ``SmoothL1Loss``,
      ``PoissonNLLLoss`` (targets shaped like the output, (n,) accepted for one output), with
      their parameters (class weights, label smoothing, pos_weight, delta, ...).
    optimizer: an ``mlpcore.Optimizer`` over ``model.parameters()``; default ``Adam(lr=1e-3)``.
      Create it after moving the model to its device (or pass ``device`` here and let the
      Trainer create the default one).
    batch_size: rows per training step (default for ``fit``); a batch_size larger than the data
      is clipped to the number of rows (one full batch per epoch).
    device: 'cpu' or 'cuda'; the model is moved there if it is not already.
    compiled: None (default) = the compiled path when the model supports it; False = always
      train module by module (for teaching and debugging; same numbers, slower); True = require
      the compiled path (ValueError if the model contains a custom module).
    metrics: None (default: "accuracy" for CE / BCE, "mse", "mae", "r2" for the regression losses in
      ``evaluate`` and validation; see ``fit`` for training), or a list of names ("accuracy",
      "precision", "recall", "f1", "roc_auc"; "mse", "mae", "r2") and callables
      ``fn(y_true, out) -> float`` (see ``training.metrics``). They appear in History and the
      callbacks' epoch logs, running over the epoch for training as Keras reports them (each
      batch's outputs from its training forward pass, before its update: the compiled epoch hands
      them back, no second forward), and "val_"-prefixed from one eval-mode pass over the
      validation data. ValueError for an unknown name or one that does not fit the loss.
    clip_grad_norm: None, or max_norm: every step clips the gradients of the optimizer's
      (trainable) parameters to that joint L2 norm between backward and the optimizer step
      (``mc.clip_grad_norm_``; in C++, inside the compiled epoch).
    distributed: data-parallel training over the processes of an MPI job (``mpiexec -n P python
      train.py``; ``pip install "mlpcore[mpi]"``): every rank passes the same data (arrays or
      ``np.memmap``, read in place) and runs its share of each global batch of ``batch_size`` rows;
      the gradients are summed inside the compiled epoch (sample and class weights, clipping: the
      whole batch's), so every rank keeps the same weights, one process's up to rounding. ``fit``
      (collective, as ``train_on_batch``) starts from rank 0's state, reduces its logs over ranks
      and lets rank 0 alone print and write files (``is_main``); ``predict`` and ``evaluate`` are
      not collective. Compiled path only (ValueError otherwise); BatchNorm1d is refused.
      ``training.parallel`` and README's "Data-parallel training" say more.

    Inputs (``fit``, ``evaluate``, ``predict``, ``train_on_batch``): see ``training.data``: float,
    int and bool arrays, pandas DataFrames of numeric / bool columns; int targets for MSE / BCE.

    Attributes: ``model``, ``loss``, ``optimizer``, ``batch_size``, ``distributed``, ``is_main``
    (False on the ranks other than 0 of a distributed job), ``stop_training`` (a callback
    sets it to end ``fit`` after the current epoch), ``base_lr`` (the learning rate LR schedules
    scale; set when a fit starts from epoch 0 and carried in checkpoints), ``initial_epoch``,
    ``history``. A Trainer pickles and deep-copies with its model and optimizer (a copy trains
    on its own).
    """

    def __init__(self, model: Module, loss: Optional[_Loss] = None, optimizer: Optional[Optimizer] = None,
                 batch_size: int = 128, device: Optional[str] = None, compiled: Optional[bool] = None,
                 metrics=None, clip_grad_norm: Optional[float] = None, distributed: bool = False):
        if not isinstance(model, Module):
            raise TypeError(f"model: expected a mlpcore Module, got {type(model).__name__}")
        if loss is None:
            loss = CrossEntropyLoss()
        if not isinstance(loss, _Loss):
            raise TypeError(f"loss: expected a mlpcore loss (mlpcore.losses: CrossEntropyLoss, MSELoss, ...), got "
                            f"{type(loss).__name__}")
        if compiled not in (None, True, False):
            raise ValueError(f"compiled: expected None, True or False, got {compiled!r}")
        if distributed not in (True, False):
            raise ValueError(f"distributed: expected True or False, got {distributed!r}")
        if device is not None:
            model.to(device)  # checks the device (the core's rule); a no-op when the model is there
        if optimizer is None:
            optimizer = Adam(model.parameters(), lr=1e-3)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a mlpcore Optimizer, got {type(optimizer).__name__}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.batch_size = pos_int("batch_size", batch_size)
        self.compiled = compiled
        self.metrics = metrics
        if clip_grad_norm is not None:
            clip_grad_norm = positive("clip_grad_norm", clip_grad_norm, allow_zero=True)
        self.clip_grad_norm = clip_grad_norm
        self.distributed = bool(distributed)
        self.stop_training = False
        self.base_lr = optimizer.lr
        self.initial_epoch = 0
        self.history: Optional[History] = None
        self._dtype = model.dtype  # fixed for the model's life (its parameters' arena dtype)
        if compiled is True and self._net() is None:
            raise ValueError("compiled=True: the model cannot be lowered to the compiled network (it contains a "
                             "custom module, or is not a Sequential of built-in modules)")
        if self.distributed:
            if self._net() is None:
                why = ("Trainer has compiled=False" if compiled is False else
                       "model cannot be lowered to the compiled network (it contains a custom module, or is not "
                       "a Sequential of built-in modules)")
                raise ValueError(f"distributed=True: data-parallel training runs on the compiled path only; this "
                                 f"{why}, and the module-by-module path is single-process")
            dist.init()

    @property
    def metrics(self):
        """The metrics as given (None: the default logs); setting them checks them again."""
        return self._metrics_arg

    @metrics.setter
    def metrics(self, value) -> None:
        self._metrics = metrics_mod.resolve(value, self.loss.kind)  # [(name, callable or None)] or None
        self._metrics_arg = value

    # ----- helpers -----
    @property
    def is_main(self) -> bool:
        """True unless this is a rank other than 0 of a distributed job (which prints and saves nothing)."""
        return self._comm() is None or self._comm().rank == 0

    def _comm(self):
        """The core's communicator when distributed, else None (``init`` is idempotent: an unpickled
        Trainer joins the job of the process it lands in)."""
        return dist.init() if self.distributed else None

    def _net(self):
        """The compiled network, or None for the module-by-module path."""
        if self.compiled is False:
            return None
        get = getattr(self.model, "compiled", None)
        return get() if callable(get) else None

    def _prepare(self, X, y, net, xname: str = "X", yname: str = "y") -> tuple:
        """(X, y) validated and converted once (``training.data.prepare``) for this model and loss."""
        fin, fout = data.widths(net)
        return data.prepare(X, y, self.loss.kind, self._dtype, fin, fout, xname, yname)

    def _prepare_weights(self, w, rows: int, name: str = "sample_weight", xname: str = "X"):
        """Sample weights validated and converted once (``training.data.as_sample_weight``): (rows,)
        of the model dtype, or None."""
        return data.as_sample_weight(w, name, rows, self._dtype, xname)

    def _python_step(self, xb, yb, check_finite: bool, epoch: int, batch: int, wb=None):
        """zero_grad, forward, loss, backward, step, module by module (``_forward_modules`` /
        ``_backward_modules``: never through a compiled network). Returns (loss, output). epoch,
        batch: what a non-finite loss names (epoch < 0: a lone step, ``train_on_batch``)."""
        self.model.zero_grad()
        out = self.model._forward_modules(xb)
        value = self.loss(out, yb, wb)
        if check_finite and not math.isfinite(value):  # the compiled step's error (epoch < 0: one step)
            _core._check_loss_finite(value, epoch, batch)
        self.model._backward_modules(self.loss.backward())
        if self.clip_grad_norm is not None:  # between backward and the step, as the compiled epoch
            self.optimizer._core.clip_grad_norm(self.clip_grad_norm)
        self.optimizer.step()
        return value, out

    # ----- the epoch runner: fit and the scikit-learn estimators call it -----
    def _run_epoch(self, X: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, shuffle_seed: int,
                   epoch: int, check_finite: bool = True, callbacks: Optional[list] = None,
                   prog: Optional[Union[_progress.Progress, _progress.EpochLines]] = None,
                   sample_weight: Optional[np.ndarray] = None, outputs: Optional[np.ndarray] = None) -> EpochResult:
        """One epoch over (X, y) as prepared by ``_prepare`` (not validated again), in train mode.
        sample_weight: (n,) as prepared by ``_prepare_weights``, or None; batch b's loss is the
        weighted mean of its rows (the weights shuffled with them).

        batch_size: rows per step (<= n); the rows run in the order
        ``permutation(n, shuffle_seed)`` when ``shuffle`` (fit passes ``epoch_seed(seed, epoch)``,
        the estimators a seed drawn from their random_state), else in order. epoch: the index
        non-finite errors name. check_finite: RuntimeError at the first non-finite batch loss,
        before that batch updates the weights. callbacks: callbacks whose batch hooks run (one C++
        call per batch); prog: the progress display (chunked calls while it shows a bar).
        outputs: None, or an (n, out) array of the model's dtype that receives each batch's
        training-mode outputs (before its update) in the order the rows were visited (running
        metrics). Returns the epoch's :class:`EpochResult` (``loss``: the batch losses averaged
        with their row counts as weights, as scikit-learn's ``loss_curve_`` and Keras' epoch loss).
        """
        if not self.model.training:  # a callback (or the user) switched to eval mode between epochs
            self.model.train()
        net = self._net()
        if net is None:
            if self.distributed:
                raise RuntimeError("distributed=True: the model no longer lowers to the compiled network, and "
                                   "the module-by-module path is single-process")
            return self._epoch_python(X, y, batch_size, shuffle, shuffle_seed, epoch, check_finite, callbacks, prog,
                                      sample_weight, outputs)
        return self._epoch_compiled(net, X, y, batch_size, shuffle, shuffle_seed, epoch, check_finite, callbacks,
                                    prog, sample_weight, outputs)

    def _epoch_compiled(self, net, X, y, bs, shuffle, seed, epoch, check_finite, cbs, prog, w,
                        outputs) -> EpochResult:
        """Through Network.train_epoch: one call, or one per batch when a callback has batch hooks,
        or one per adaptive chunk of batches while a per-epoch bar is shown. The calls cover the
        same batches in the same order, so the numbers are identical."""
        opt, spec, clip, comm = self.optimizer._core, self.loss.spec, self.clip_grad_norm, self._comm()
        # Distributed: every rank makes the same calls (the core checks it), so a bar shown on rank 0
        # alone cannot split the epoch into chunks timed there; it advances once per epoch.
        if cbs is None and (prog is None or not prog.per_epoch or comm is not None):
            r = net.train_epoch(opt, spec, X, y, bs, shuffle, seed, epoch, check_finite, validate=False,
                                sample_weight=w, clip_grad_norm=clip, outputs=outputs, comm=comm)
            if prog is not None and prog.per_epoch:
                prog.batches_done(-(-X.shape[0] // bs), r.loss)
            return r
        n = X.shape[0]
        num_batches = -(-n // bs)
        total, correct, b = 0.0, 0, 0
        while b < num_batches:
            if cbs is not None:
                e = b + 1
                blogs = {"batch": b, "size": min(bs, n - b * bs)}
                for cb in cbs:
                    cb.on_batch_begin(b, blogs)
            else:
                e = min(num_batches, b + prog.chunk)
            t0 = time.perf_counter()
            r = net.train_epoch(opt, spec, X, y, bs, shuffle, seed, epoch, check_finite, batch_begin=b,
                                batch_end=e, validate=False, sample_weight=w, clip_grad_norm=clip, outputs=outputs,
                                comm=comm)
            total += r.loss * r.rows
            correct += r.correct
            if cbs is not None:
                blogs = {"batch": b, "size": r.rows, "loss": r.loss}
                for cb in cbs:
                    cb.on_batch_end(b, blogs)
            else:
                prog.chunk_done(time.perf_counter() - t0)
            if prog is not None:
                prog.batches_done(e - b, total / min(e * bs, n))
            b = e
        return EpochResult(total / n, correct, n)

    def _epoch_python(self, X, y, bs, shuffle, seed, epoch, check_finite, cbs, prog, w, outputs) -> EpochResult:
        """Module by module, over the same batches as train_epoch."""
        n = X.shape[0]
        order = _core.permutation(n, seed) if shuffle else None
        total, done, correct = 0.0, 0, 0
        count = self.loss.kind == _CE
        for b, start in enumerate(range(0, n, bs)):
            idx = order[start:start + bs] if shuffle else slice(start, min(start + bs, n))
            xb, yb = X[idx], y[idx]
            wb = w[idx] if w is not None else None
            rows = xb.shape[0]
            if cbs is not None:
                for cb in cbs:
                    cb.on_batch_begin(b, {"batch": b, "size": rows})
            value, out = self._python_step(xb, yb, check_finite, epoch, b, wb)
            if outputs is not None:
                outputs[start:start + rows] = out
            if count:
                correct += metrics_mod.correct_count(out, yb)
            total += value * rows
            done += rows
            if cbs is not None:
                for cb in cbs:
                    cb.on_batch_end(b, {"batch": b, "size": rows, "loss": value})
            if prog is not None:
                prog.batches_done(1, total / done)
        return EpochResult(total / n, correct, n)

    # ----- public API -----
    def train_on_batch(self, X, y, check_finite: bool = True, sample_weight=None) -> float:
        """One training step on the whole of (X, y) (one batch); returns its loss (before the
        update), the weighted mean with ``sample_weight`` (n,). Compiled path when available; a
        model in eval mode is switched to train mode. A non-finite loss raises RuntimeError before
        the weights change (unless check_finite=False). Float arrays go to the core as they are
        and are checked there once; anything else (ints, DataFrames, ...) goes through
        ``training.data`` first."""
        net = self._net()
        if not self.model.training:
            self.model.train()
        if net is None:
            if self.distributed:
                raise RuntimeError("distributed=True: the model no longer lowers to the compiled network")
            X, y = self._prepare(X, y, None)
            w = self._prepare_weights(sample_weight, X.shape[0])
            return self._python_step(X, y, check_finite, -1, 0, w)[0]
        opt, spec, clip, comm = self.optimizer._core, self.loss.spec, self.clip_grad_norm, self._comm()
        if comm is not None:  # the first step of this model and optimizer takes rank 0's state, as fit
            parallel.sync_trainer(self)
        if type(X) is np.ndarray and type(y) is np.ndarray and X.dtype.kind == "f" and (
                sample_weight is None or type(sample_weight) is np.ndarray):
            # float arrays: the binding checks them once (dtype, shape, NaN/Inf, label range) and
            # converts float32 <-> float64 itself; it raises before touching the weights (and, when
            # distributed, before any collective: the ranks meet in the core's argument check).
            # Positional arguments: pybind11's keyword matching is a visible share of a small
            # model's step.
            try:
                return net.train_step(opt, spec, X, y, check_finite, True, sample_weight, clip, comm)
            except (TypeError, ValueError):
                pass  # the path below converts what the binding refuses, or explains why
        X, y = self._prepare(X, y, net)
        w = self._prepare_weights(sample_weight, X.shape[0])
        return net.train_step(opt, spec, X, y, check_finite, validate=False, sample_weight=w, clip_grad_norm=clip,
                              comm=comm)

    def predict(self, X, batch_size: Optional[int] = None) -> np.ndarray:
        """Raw outputs (n, out) in eval mode (logits for CE/BCE), batched (default
        ``EVAL_BATCH`` rows per call), through the one predict path."""
        return _predict(self.model, data.to_array(X, "X", self._dtype), batch_size)

    def predict_proba(self, X, batch_size: Optional[int] = None) -> np.ndarray:
        """Class probabilities: softmax of the logits (CrossEntropyLoss, rows sum to 1) or
        sigmoid (BCEWithLogitsLoss, per output). ValueError for the regression losses."""
        return metrics_mod.probabilities(self.loss.kind, self.predict(X, batch_size))

    def evaluate(self, X, y, batch_size: Optional[int] = None, sample_weight=None) -> dict:
        """Loss and metrics in eval mode: {"loss", "accuracy"} for CE / BCE, {"loss", "mse",
        "mae", "r2"} for MSE, L1, Huber and SmoothL1, {"loss"} for Poisson NLL, or "loss" and the
        Trainer's ``metrics``. Python floats.
        sample_weight (n,): the loss is the weighted mean over all rows (``sum(w v) / sum(w n)``)
        and the metrics weigh the rows as scikit-learn's do.
        Distributed: not a collective (as ``predict``) -- each rank evaluates the whole set by
        itself, so ``if mc.distributed.is_main(): trainer.evaluate(...)`` is safe; inside ``fit``,
        validation is split over the ranks."""
        X, y = self._prepare(X, y, self._net())
        return self._evaluate_prepared(X, y, batch_size, self._prepare_weights(sample_weight, X.shape[0]))

    def _evaluate_prepared(self, X, y, batch_size=None, sample_weight=None, split: bool = False) -> dict:
        """evaluate on data that ``_prepare`` / ``_prepare_weights`` returned (not scanned again).
        ``split`` (inside fit, every rank there): distributed, ``training.parallel.evaluate``."""
        bs = pos_int("batch_size", batch_size) if batch_size is not None else EVAL_BATCH
        if split and self.distributed:
            return parallel.evaluate(self, X, y, bs, sample_weight)
        net = self._net()
        if net is not None and self._ce_in_one_pass(sample_weight):
            # loss and arg-max hits in one C++ pass, no outputs kept
            value, correct = net.evaluate(self.loss.spec, X, y, bs, validate=False)
            return metrics_mod.running_logs(_CE, float(value), correct, X.shape[0])
        # one eval-mode pass: the loss and every metric from the same outputs
        return self._output_logs(_predict(self.model, X, bs), y, sample_weight)

    def _ce_in_one_pass(self, sample_weight) -> bool:
        """Evaluation needs no outputs: cross-entropy, unweighted, only metrics from arg-max hits."""
        wanted = self._metrics
        return self.loss.kind == _CE and sample_weight is None and (
            wanted is None or metrics_mod.free_with_training(_CE, wanted))

    def _output_logs(self, out: np.ndarray, y: np.ndarray, sample_weight) -> dict:
        """The loss and metrics of eval-mode outputs ``out`` (n, out) against ``y``."""
        value, _ = _core.loss_forward_backward(self.loss.spec, out, y, out.dtype, sample_weight)
        return metrics_mod.eval_logs(self.loss.kind, self._metrics, value, out, y, sample_weight)

    def fit(self, X, y, epochs: int = 10, batch_size: Optional[int] = None, validation_data=None,
            validation_split: Optional[float] = None, shuffle: bool = True, seed: Optional[int] = 0,
            callbacks: Optional[Sequence[Callback]] = None, verbose: Union[str, int] = "auto",
            resume_from: Optional[str] = None, check_finite: bool = True, train_metrics: bool = False,
            sample_weight=None, progress: Optional[bool] = None) -> History:
        """Train for ``epochs`` epochs; returns a :class:`History`.

        X (n, in) (converted to the model dtype, see ``training.data``); y: int class ids (n,) for
        CrossEntropyLoss, targets (n, out) (or (n,) for one output) for the other losses. Both are
        validated once per fit (the validation set too).
        sample_weight: (n,) weights of the rows, or None: each batch's loss is the weighted mean
        of its rows (``mlpcore.losses``), the weights shuffled with the rows.
        batch_size: default the Trainer's; clipped to n. validation_data=(Xv, yv) or
        (Xv, yv, wv) (validation sample weights, as Keras), or validation_split=f in (0, 1): the
        *last* f of the rows (before shuffling) are held out, as in Keras (their sample weights
        with them). shuffle/seed: epoch e visits rows in the order permutation(n,
        epoch_seed(seed, e)); seed=None draws one at random. callbacks: ``mlpcore.callbacks``
        objects. verbose (as Keras): 0 silent, 1 progress bars, 2 one line per epoch; "auto" (default):
        bars in a terminal or a notebook, one line per epoch when stdout is a file or a pipe (see
        ``training.progress``). progress: deprecated (True = verbose "auto", False = verbose 0).
        resume_from: a checkpoint written by ``mlpcore.save(model, path, optimizer=..., epoch=k)``
        (e.g. by ModelCheckpoint): its weights and optimizer state are loaded and training
        continues at epoch k up to ``epochs`` (``epochs`` counts from the start, as Keras'
        initial_epoch; ``epochs`` <= k warns and trains nothing); on the CPU the result is
        bit-identical to an uninterrupted run with the
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
            over the training data at the end of each epoch (a forward pass over the training
            set per epoch: it costs a sizeable share of the epoch time).

        Ctrl-C (KeyboardInterrupt) arrives within a training step, also inside a compiled epoch,
        and leaves the weights and optimizer state as a whole number of steps left them.
        ``trainer.history`` keeps the epochs finished before an exception ends ``fit``.

        History: ``history.history`` = {"loss": [...], training metrics (above), "val_loss",
        "val_accuracy" | "val_mse", "val_mae", "val_r2" (with validation data, always all of
        them, after the epoch)} and ``history.epoch`` = [epoch indices]. "loss" is the mean of the
        epoch's batch losses (each taken before its update, weighted by batch rows; as Keras).
        Callbacks may add more keys (LR schedules add "lr").
        """
        epochs = pos_int("epochs", epochs)
        if progress is not None:
            warnings.warn("fit(progress=...) is deprecated: use verbose= (0 silent, 1 progress bars, 2 one line "
                          "per epoch, 'auto')", DeprecationWarning, stacklevel=2)
            verbose = "auto" if progress else 0
        _progress.resolve_verbose(verbose)  # a bad value fails before any work
        bs = pos_int("batch_size", batch_size if batch_size is not None else self.batch_size)
        seed = seed_or_random(parallel.agreed_seed(seed) if self.distributed else seed)
        callbacks = list(callbacks) if callbacks is not None else []
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}]: expected a mlpcore.callbacks.Callback, got {type(cb).__name__}")
        if validation_data is not None and validation_split is not None:
            raise ValueError("validation_data, validation_split: pass one of them, not both")

        X, y, w, val = data.fit_data(X, y, validation_data, validation_split, sample_weight, self.loss.kind,
                                     self._dtype, self._net())
        n = X.shape[0]
        bs = min(bs, n)
        num_batches = (n + bs - 1) // bs
        if self.distributed:
            parallel.check_fit(self, X, w, val, callbacks, epochs=epochs, batch_size=bs, shuffle=bool(shuffle),
                               seed=seed, resume_from=str(resume_from), check_finite=bool(check_finite),
                               train_metrics=bool(train_metrics))

        # --- resume ---
        self.initial_epoch = 0
        self.base_lr = self.optimizer.lr
        if resume_from is not None:
            self._resume(resume_from)
            if self.initial_epoch >= epochs:
                warnings.warn(f"fit: the checkpoint {resume_from!r} was saved after epoch {self.initial_epoch} and "
                              f"epochs={epochs} counts from the start (as Keras' initial_epoch), so nothing is "
                              f"trained; pass epochs > {self.initial_epoch} to train on", UserWarning, stacklevel=2)
        if self.distributed:  # every rank from rank 0's weights and optimizer state
            parallel.sync_trainer(self, force=True)

        # --- callbacks ---
        history = History()
        cbs = callbacks + [history]
        params = {"epochs": epochs, "steps": num_batches, "batch_size": bs, "samples": n,
                  "initial_epoch": self.initial_epoch}
        for cb in cbs:
            cb.set_trainer(self, params)
        batch_cbs = cbs if any(cb._has_batch_hooks() for cb in cbs) else None
        self.stop_training = False
        self.history = history

        was_training = self.model.training
        prog = _progress.make_progress(verbose if self.is_main else 0, epochs, num_batches)
        # running training metrics that need the outputs: each batch's training-forward outputs,
        # handed back by the epoch (no second forward pass)
        outputs = None
        if self._metrics is not None and not train_metrics and \
                not metrics_mod.free_with_training(self.loss.kind, self._metrics):
            outputs = np.empty((n, self._out_width(X)), dtype=self._dtype)
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
                eseed = epoch_seed(seed, epoch)
                r = self._run_epoch(X, y, bs, shuffle, eseed, epoch, check_finite, batch_cbs, prog, w, outputs)
                if outputs is not None and self.distributed:
                    self._comm().allreduce_sum(outputs)  # each rank's rows, zeros elsewhere: the sum is all
                if train_metrics:
                    logs = {"loss": r.loss}
                    train = self._evaluate_prepared(X, y, sample_weight=w, split=True)
                    logs.update((k, v) for k, v in train.items() if k != "loss")
                else:
                    yv = y[_core.permutation(n, eseed)] if shuffle and outputs is not None else y
                    logs = metrics_mod.epoch_logs(self.loss.kind, self._metrics, r.loss, r.correct, r.rows,
                                                  outputs, yv)
                if val is not None:
                    valid = self._evaluate_prepared(val[0], val[1], sample_weight=val[2], split=True)
                    logs.update(("val_" + k, v) for k, v in valid.items())
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
        if self.distributed:  # the promise of data parallelism, checked: every rank holds the same weights
            parallel.check_identical(self.model)
        return history

    def _resume(self, path) -> None:
        """Load weights, optimizer state and epoch count from the checkpoint at ``path``."""
        from ..io import _read_metadata, load_checkpoint

        # Refuse a checkpoint without optimizer state before any weight is overwritten (reads the
        # header only; load_checkpoint reads the file again below, once per run)
        meta = _read_metadata(path)
        if "optimizer" not in meta:
            raise ValueError(f"resume_from: checkpoint {path!r} has no optimizer state; save it with "
                             "mlpcore.save(model, path, optimizer=opt, epoch=...) (ModelCheckpoint does)")
        # weights by name into the model as it is (custom Python modules included; a mismatch of
        # names or shapes raises ValueError before anything is written) and each Dropout's RNG state
        try:
            ck = load_checkpoint(path, model=self.model)
        except ValueError as e:
            raise ValueError(f"resume_from: {e}") from None
        self.optimizer.load_state_dict(ck["optimizer_state"])
        self.initial_epoch = int(ck.get("epoch") or 0)
        extra = ck.get("extra") or {}
        self.base_lr = float(extra.get("base_lr", self.optimizer.lr)) if isinstance(extra, dict) else self.optimizer.lr

    def _out_width(self, X: np.ndarray) -> int:
        """The model's output width (from its layers, else from one row's forward in eval mode)."""
        width = self.model._features(X.shape[1])[1]
        if width is None:
            width = _predict(self.model, X[:1]).shape[1]
        return int(width)

    def __repr__(self) -> str:
        path = "compiled" if self._net() is not None else "module-by-module"
        return (f"Trainer(loss={self.loss!r}, optimizer={self.optimizer!r}, batch_size={self.batch_size}, "
                f"path={path})")
