"""``predict``: THE eval-mode predict path of a model.

Used by eval-mode ``model(x)`` under ``no_grad``, ``Trainer.predict`` / ``evaluate``, the plots
and the scikit-learn estimators. A model that lowers runs its compiled network's batched predict
(dropout off, nothing kept, ``EVAL_BATCH`` rows per pass unless told); any other model runs module
by module in eval mode under ``no_grad``, in batches, and its modes are restored afterwards.

``batch_invariant=True`` runs the call in the core's batch-invariant mode (every output row
bitwise independent of its batch, the batch size and the thread count; see
``mlpcore.set_batch_invariant``), restoring the process-wide setting afterwards; ``None`` keeps
whatever is set.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np

from .. import _core
from .._validate import pos_int
from .grad_mode import no_grad

# Rows per pass of a batched predict: bounds the activation workspace.
EVAL_BATCH = 1024


def predict(model, X, batch_size: Optional[int] = None,
            batch_invariant: Optional[bool] = None) -> np.ndarray:
    """Outputs (n, out) of ``model`` for ``X`` (n, in) in eval mode, in the model's dtype."""
    bs = EVAL_BATCH if batch_size is None else pos_int("batch_size", batch_size)
    if batch_invariant is None or bool(batch_invariant) == _core.get_batch_invariant():
        return _predict(model, X, bs)
    with _batch_invariant(bool(batch_invariant)):
        return _predict(model, X, bs)


@contextlib.contextmanager
def _batch_invariant(on: bool):
    before = _core.get_batch_invariant()
    _core.set_batch_invariant(on)
    try:
        yield
    finally:
        _core.set_batch_invariant(before)


def _predict(model, X, bs: int) -> np.ndarray:
    net = model._network()
    if net is not None:
        return net.predict(X, bs)
    X = _core._as_matrix(X, "X", model.dtype, -1)
    # The modes to restore: the model's own (known without a walk) unless it mixes them.
    uniform = model._uniform_mode()
    modes = [(m, m.training) for m in model.modules()] if uniform is None else None
    model.eval()
    try:
        with no_grad():
            outs = [np.asarray(model(X[i:i + bs])) for i in range(0, X.shape[0], bs)]
    finally:
        if modes is None:
            model.train(uniform)
        else:
            for m, t in modes:
                if m.training != t:
                    m.training = t
    return np.concatenate(outs, axis=0)
