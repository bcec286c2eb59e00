"""``gradcheck``: compare a module's backward with float64 central finite differences.

It is the way to verify the backward of a custom Python :class:`~mlpcore.nn.Module`: the
module must hold float64 parameters (build built-in layers with ``dtype=np.float64``) and its
forward must compute in float64.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from .nn import Module, Sequential


def gradcheck(module: Union[Module, Sequence[Module]], x: np.ndarray, loss=None, target=None,
              eps: float = 1e-6, seed: int = 0) -> dict:
    """Max relative error per parameter (and for the input, key ``"input"``):
    ``max|analytic - numeric| / max|numeric|``.

    The scalar checked is ``loss(module(x), target)`` when a loss is given, otherwise
    ``sum(module(x) * r)`` for a fixed random ``r`` (which exercises every output).
    ``module`` may be a sequence of modules (wrapped in a Sequential).

    This is how to verify the backward of a custom Python Module (float64 throughout)::

        report = mc.gradcheck(MyModule(), np.random.randn(4, 5))   # {"input": ..., "w": ...}
        assert max(report.values()) < 1e-6

    Errors of 1e-10 to 1e-8 are normal; a wrong backward shows up as an error of order 1 on the
    parameter (or the input) it gets wrong. Dropout is switched off (eval mode) while checking.
    """
    if not isinstance(module, Module):
        module = Sequential(*module)
    x = np.array(x, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D array (batch, features), got shape {x.shape}")
    params = list(module.named_parameters())
    for name, p in params:
        if p.dtype != np.float64:
            raise ValueError(f"gradcheck: parameter {name!r} is {p.dtype}; build the module with dtype=np.float64")
    was_training = module.training
    module.eval()  # no dropout noise between the evaluations
    try:
        out = module.forward(x)
        r = np.random.default_rng(seed).standard_normal(out.shape)

        def f() -> float:
            o = module.forward(x)
            return loss(o, target) if loss is not None else float(np.sum(o * r))

        # analytic
        module.zero_grad()
        f()
        g_out = loss.backward() if loss is not None else r
        gx = module.backward(g_out)
        analytic = {name: p.grad.copy() for name, p in params}

        def numeric(arr: np.ndarray) -> np.ndarray:
            g = np.zeros_like(arr)
            flat, gf = arr.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                fp = f()
                flat[i] = old - eps
                fm = f()
                flat[i] = old
                gf[i] = (fp - fm) / (2 * eps)
            return g

        def rel(a, n) -> float:
            scale = np.max(np.abs(n))
            return float(np.max(np.abs(a - n)) / scale) if scale > 0 else float(np.max(np.abs(a - n)))

        report = {"input": rel(gx, numeric(x))}
        for name, p in params:
            view = p.data
            if not np.shares_memory(view, p.data):  # not a zero-copy view (cuda): cannot perturb in place
                raise RuntimeError("gradcheck runs on the CPU")
            report[name] = rel(analytic[name], numeric(view))
        return report
    finally:
        module.train(was_training)
