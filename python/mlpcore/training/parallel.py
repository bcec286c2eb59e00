"""Data-parallel training for the Trainer (``Trainer(..., distributed=True)``): what the ranks of a
job agree on before they train, and evaluation split over them.

The training step itself is the core's (``Network.train_epoch(..., comm=...)``: every rank runs its
rows of each global batch and the gradients are all-reduced inside the compiled epoch, see
``cpp/src/network_parallel.cpp``). Here, once per ``fit`` and per evaluation:

- :func:`sync_from_main` (at the start of every ``fit`` and before the first ``train_on_batch`` of a
  model and optimizer): every rank takes rank 0's weights, Dropout RNG states and optimizer
  state (one checkpoint's bytes, broadcast), so a model built without a seed trains correctly;
- :func:`check_same` (:func:`check_fit` for ``fit``): the ranks passed the same data sizes and
  settings (ValueError on every rank, naming what differs, instead of a hang in a collective that
  some rank never reaches);
- :func:`evaluate` (fit's validation and training metrics): each rank evaluates its contiguous
  share of the rows and the sums are all-reduced, so every rank gets the same loss and metrics
  (callbacks decide alike). The public ``Trainer.evaluate`` is not a collective.

Nothing here runs per step. The module-by-module path is single-process (the Trainer refuses
``distributed=True`` for a model that does not lower to the compiled network).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .. import _core
from .. import distributed as dist
from .._validate import seed_or_random
from ..nn.inference import predict as _predict
from . import metrics

__all__ = ["agreed_seed", "check_fit", "check_identical", "check_same", "evaluate", "shard", "sync_from_main", "sync_trainer"]

_CE = _core.LossKind.cross_entropy


def shard(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n`` rows (the core splits each batch the same way)."""
    return slice(n * rank // size, n * (rank + 1) // size)


def check_same(what: str, **values) -> None:
    """ValueError on every rank unless every rank passed the same ``values`` (ints, floats, strings)."""
    seen = dist.allgather_object(values)
    differ = [k for k in values if any(v.get(k) != seen[0].get(k) for v in seen)]
    if differ:
        got = "; ".join(f"{k}: {[v.get(k) for v in seen]}" for k in differ)
        raise ValueError(f"{what}: the ranks of this data-parallel job passed different {', '.join(differ)} "
                         f"({got}); every rank must pass the same data and settings")


def check_fit(trainer, X, w, val, callbacks, **settings) -> None:
    """:func:`check_same` for ``Trainer.fit``: the data's sizes, ``settings`` (fit's arguments) and
    what decides the calls the ranks make (sample weights, metrics that need the training
    outputs, callbacks with batch hooks, gradient clipping)."""
    check_same("fit", rows=X.shape[0], features=X.shape[1], validation_rows=val[0].shape[0] if val else 0,
               sample_weight=w is not None, validation_weight=bool(val and val[2] is not None),
               metrics=[name for name, _ in trainer._metrics or []], clip_grad_norm=trainer.clip_grad_norm,
               batch_callbacks=any(cb._has_batch_hooks() for cb in callbacks), **settings)


def agreed_seed(seed):
    """``fit``'s seed on every rank: ``None`` takes rank 0's draw. A collective on every rank,
    whatever each passed; a rank that passed another seed then fails in :func:`check_fit`."""
    dist.init()  # idempotent; joins the job in a process that unpickled a distributed Trainer
    drawn = dist.broadcast_object(seed_or_random(None) if seed is None else None)
    return drawn if seed is None else seed


def sync_trainer(trainer, force: bool = False) -> None:
    """:func:`sync_from_main` for the trainer's model and optimizer, unless the ranks took rank 0's
    state for these very objects already (``fit`` forces it: resume may have loaded a checkpoint)."""
    last = getattr(trainer, "_synced", (None, None))
    if force or last[0] is not trainer.model or last[1] is not trainer.optimizer:
        model, opt = trainer.model, trainer.optimizer
        # the same model and optimizer on every rank (else loading rank 0's state fails on some)
        check_same("the model and optimizer", device=model.device, dtype=str(trainer._dtype),
                   parameters=[list(p.shape) for p in model.parameters()], optimizer=type(opt).__name__)
        sync_from_main(trainer.model, trainer.optimizer)
        trainer._synced = (trainer.model, trainer.optimizer)


def sync_from_main(model, optimizer) -> None:
    """Every rank takes rank 0's parameters, buffers, Dropout RNG states and optimizer state."""
    from ..io import load_checkpoint_bytes, save_bytes

    sent = None
    if dist.is_main():
        try:
            sent = (True, save_bytes(model, optimizer=optimizer, allow_nonfinite=True))
        except Exception as e:  # noqa: BLE001 - re-raised below, on every rank alike
            sent = (False, f"{type(e).__name__}: {e}")
    ok, data = dist.broadcast_object(sent)
    if not ok:  # every rank raises (the others would otherwise wait in the broadcast)
        raise RuntimeError(f"distributed: rank 0 could not share its model and optimizer state ({data})")
    error = None
    if not dist.is_main():
        try:
            ck = load_checkpoint_bytes(data, model=model)
            optimizer.load_state_dict(ck["optimizer_state"])
        except Exception as e:  # noqa: BLE001 - re-raised below, on every rank alike
            error = f"{type(e).__name__}: {e}"
    failed = [(r, e) for r, e in enumerate(dist.allgather_object(error)) if e is not None]
    if failed:
        raise RuntimeError("distributed: rank(s) " + ", ".join(f"{r} ({e})" for r, e in failed) +
                           " could not take rank 0's model and optimizer state")


def check_identical(model) -> None:
    """RuntimeError on every rank unless every rank holds bitwise the same parameters and buffers
    (a digest per rank, gathered): the core's all-reduce gives every rank the same sum, so a
    difference means a rank's model was changed outside the collective step (a callback that sets
    weights on one rank, say) or that the ranks' arithmetic differs."""
    h = hashlib.sha256()
    for name, a in model.state_dict().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(a).tobytes())
    seen = dist.allgather_object(h.hexdigest())
    differ = [r for r, d in enumerate(seen) if d != seen[0]]
    if differ:
        raise RuntimeError(f"distributed: after training, the weights of rank(s) {differ} differ from rank 0's; "
                           "change the model on every rank alike (a callback that edits weights must run on "
                           "every rank)")


def evaluate(trainer, X: np.ndarray, y: np.ndarray, batch_size: int, sample_weight=None) -> dict:
    """``Trainer._evaluate_prepared(split=True)`` over the ranks: rank r evaluates rows
    ``shard(n, r, size)``.

    Cross-entropy without sample or class weights, default metrics (the loss is a plain mean over
    rows): the core's loss and arg-max hits of each share, summed over ranks. Otherwise each rank
    predicts its share into a zero (n, out) array and the sum over ranks is the whole output
    (every row written by one rank), from which every rank computes the loss and metrics exactly
    as one process does (weighted means, class weights and any metric included)."""
    comm = dist.communicator()
    n, net = X.shape[0], trainer._net()
    part = shard(n, comm.rank, comm.size)
    rows = part.stop - part.start
    if trainer._ce_in_one_pass(sample_weight) and getattr(trainer.loss, "weight", None) is None:
        value, correct = (net.evaluate(trainer.loss.spec, X[part], y[part], batch_size, validate=False) if rows
                          else (0.0, 0))
        total = dist.allreduce_sum([float(value) * rows, correct])
        return metrics.running_logs(_CE, float(total[0] / n), int(total[1]), n)
    out = np.zeros((n, net.out_features), dtype=trainer._dtype)
    if rows:
        out[part] = _predict(trainer.model, X[part], batch_size)
    comm.allreduce_sum(out)
    return trainer._output_logs(out, y, sample_weight)
