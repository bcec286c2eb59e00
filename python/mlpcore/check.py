"""``gradcheck``: compare a module's backward with float64 central finite differences.

It is the way to verify the backward of a custom Python :class:`~mlpcore.nn.Module`: the
module must hold float64 parameters (build built-in layers with ``dtype=np.float64``) and its
forward must compute in float64.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from .nn.module import Module, adopt, check_distinct_modules


class _Chain(Module):
    """Modules applied in order, for gradcheck on a list. Unlike Sequential it never moves the
    parameters (they stay where the caller's model expects them) and runs module by module."""

    def __init__(self, modules: Sequence[Module]):
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"module: item {i} is a {type(m).__name__}, not a mlpcore Module")
        if not modules:
            raise ValueError("module: expected at least one Module, got an empty list")
        check_distinct_modules("gradcheck", [(str(i), m) for i, m in enumerate(modules)])
        self.layers = list(modules)
        for m in modules:
            adopt(self, m)

    def _named_children(self):
        return [(str(i), m) for i, m in enumerate(self.layers)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for m in self.layers:
            x = m.forward(x)
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        for m in reversed(self.layers):
            grad_output = m.backward(grad_output)
        return grad_output


def gradcheck(module: Union[Module, Sequence[Module]], x: np.ndarray, loss=None, target=None,
              eps: float = 1e-6, seed: int = 0) -> dict:
    """Max relative error per parameter (and for the input, key ``"input"``):
    ``max|analytic - numeric| / max|numeric|``.

    The scalar checked is ``loss(module(x), target)`` when a loss is given, otherwise
    ``sum(module(x) * r)`` for a fixed random ``r`` (which exercises every output).
    ``module`` may be a sequence of modules, applied in order (their parameters stay in place:
    an optimizer built over them keeps working).

    This is how to verify the backward of a custom Python Module (float64 throughout)::

        report = mc.gradcheck(MyModule(), np.random.randn(4, 5))   # {"input": ..., "w": ...}
        assert max(report.values()) < 1e-6

    Errors of 1e-10 to 1e-8 are normal; a wrong backward shows up as an error of order 1 on the
    parameter (or the input) it gets wrong. Dropout is switched off (eval mode) while checking.
    """
    if not isinstance(module, Module):
        if not isinstance(module, (list, tuple)):
            raise TypeError(
                f"module: expected a mlpcore Module or a list of Modules, got {type(module).__name__}")
        module = _Chain(module)
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not (0.0 < eps < 1.0):
        raise ValueError(f"eps: expected a step in (0, 1), got {eps!r}")
    xa = np.asarray(x)
    if xa.dtype.kind not in "fiu":  # complex would lose its imaginary part, bool/object/str are no data
        raise TypeError(f"x: expected a real numeric array, got dtype {xa.dtype}")
    x = np.array(xa, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D array (batch, features), got shape {x.shape}")
    params = list(module.named_parameters())
    for name, p in params:
        if p.dtype != np.float64:
            raise ValueError(f"gradcheck: parameter {name!r} is {p.dtype}; build the module with dtype=np.float64")
    modes = [(m, m.training) for m in module.modules()]
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
        for m, t in modes:
            if m.training != t:
                m.training = t
