"""Stand-in for ``mlpcore.nn.inference`` (the model side's one eval-mode predict path), with
exactly its contract: ``predict(model, X, batch_size=None)`` and ``EVAL_BATCH``.

The training side (Trainer.predict / evaluate / predict_proba, plots, the scikit-learn
estimators) calls predict only through this module, so that merging the model side is one
import to change: ``from ..nn.inference import EVAL_BATCH, predict``; then this file goes.
``batch_invariant()`` switches the core's batch-invariant mode on for a block (process-wide,
restored afterwards); it goes too if ``nn.inference.predict`` takes a ``batch_invariant`` flag.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np

from .. import _core
from .._validate import pos_int

__all__ = ["EVAL_BATCH", "batch_invariant", "predict"]

# Rows per inference call: bounds the activation workspace, large enough for GEMM speed.
EVAL_BATCH = 1024


def predict(model, X, batch_size: Optional[int] = None) -> np.ndarray:
    """Raw outputs (n, out) of ``model`` in eval mode: the compiled network when the model lowers,
    module by module otherwise; ``batch_size`` rows per call (default EVAL_BATCH)."""
    bs = pos_int("batch_size", batch_size) if batch_size is not None else EVAL_BATCH
    get = getattr(model, "compiled", None)
    net = get() if callable(get) else None
    if net is not None:
        return net.predict(X, bs)  # eval mode whatever the model's mode; validates X
    X = _core._as_matrix(X, "X", model.dtype, -1)
    was = model.training
    model.eval()
    try:
        outs = [np.asarray(model(X[i:i + bs])) for i in range(0, X.shape[0], bs)]
    finally:
        model.train(was)
    return np.concatenate(outs, axis=0)


@contextlib.contextmanager
def batch_invariant():
    """Run the block with the core's batch-invariant mode on: every predicted row is bitwise
    independent of its batch, the batch size and the thread count. A core without the switch
    runs the block as it is."""
    get = getattr(_core, "get_batch_invariant", None)
    if get is None:
        yield
        return
    before = get()
    _core.set_batch_invariant(True)
    try:
        yield
    finally:
        _core.set_batch_invariant(before)
