"""Every loss with its parameters, its PyTorch twin and valid data: the catalogue the loss tests
(tests/parity/test_loss_*.py, tests/training/test_sample_weight.py, ...) draw from.

``CASES[name]`` is a :class:`Case`; ``torch_value(case, pred_t, target_t, C, w_t)`` is the oracle:
PyTorch's ``reduction="mean"`` loss without sample weights, else its ``reduction="none"`` loss
summed over each row, times w, summed, over ``sum(w * n)`` (n = C for the element-wise losses,
the target class's weight for class-weighted cross-entropy, 1 for plain cross-entropy) — the
normalisation ``mlpcore.losses`` documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mlpcore as mc
import numpy as np


def class_weights(c: int) -> np.ndarray:
    return np.linspace(0.5, 2.0, c)


def pos_weights(c: int) -> np.ndarray:
    return np.linspace(0.3, 3.0, c)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable  # C -> mlpcore loss
    torch_make: Callable  # (C, reduction, torch dtype) -> torch loss module
    target: str  # "labels" (int class ids), "values", "probs" (in [0, 1]) or "counts" (Poisson)
    pred: str = "any"  # "positive": the loss takes a rate, not a log-rate
    class_weighted: bool = False

    @property
    def kind(self):
        return self.make(2).kind


class _TorchNN:
    """torch.nn, imported on first use (the catalogue itself imports without PyTorch)."""

    def __getattr__(self, name):
        import torch.nn

        return getattr(torch.nn, name)


nn = _TorchNN()


def _vec(v, tdt):
    import torch

    return torch.tensor(v, dtype=tdt)


def _cases() -> dict:
    cases = [
        Case("mse", lambda c: mc.MSELoss(), lambda c, r, t: nn.MSELoss(reduction=r), "values"),
        Case("l1", lambda c: mc.L1Loss(), lambda c, r, t: nn.L1Loss(reduction=r), "values"),
        Case("huber", lambda c: mc.HuberLoss(), lambda c, r, t: nn.HuberLoss(reduction=r), "values"),
        Case("huber_0.3", lambda c: mc.HuberLoss(delta=0.3), lambda c, r, t: nn.HuberLoss(reduction=r, delta=0.3),
             "values"),
        Case("huber_4", lambda c: mc.HuberLoss(delta=4.0), lambda c, r, t: nn.HuberLoss(reduction=r, delta=4.0),
             "values"),
        Case("smooth_l1", lambda c: mc.SmoothL1Loss(), lambda c, r, t: nn.SmoothL1Loss(reduction=r), "values"),
        Case("smooth_l1_0.3", lambda c: mc.SmoothL1Loss(beta=0.3),
             lambda c, r, t: nn.SmoothL1Loss(reduction=r, beta=0.3), "values"),
        Case("smooth_l1_0", lambda c: mc.SmoothL1Loss(beta=0.0),
             lambda c, r, t: nn.SmoothL1Loss(reduction=r, beta=0.0), "values"),
        Case("bce", lambda c: mc.BCEWithLogitsLoss(), lambda c, r, t: nn.BCEWithLogitsLoss(reduction=r), "probs"),
        Case("bce_pos_weight", lambda c: mc.BCEWithLogitsLoss(pos_weight=pos_weights(c)),
             lambda c, r, t: nn.BCEWithLogitsLoss(reduction=r, pos_weight=_vec(pos_weights(c), t)), "probs"),
        Case("poisson", lambda c: mc.PoissonNLLLoss(), lambda c, r, t: nn.PoissonNLLLoss(reduction=r), "counts"),
        Case("poisson_full", lambda c: mc.PoissonNLLLoss(full=True),
             lambda c, r, t: nn.PoissonNLLLoss(full=True, reduction=r), "counts"),
        Case("poisson_rate", lambda c: mc.PoissonNLLLoss(log_input=False),
             lambda c, r, t: nn.PoissonNLLLoss(log_input=False, reduction=r), "counts", pred="positive"),
        Case("poisson_rate_full_eps", lambda c: mc.PoissonNLLLoss(log_input=False, full=True, eps=0.1),
             lambda c, r, t: nn.PoissonNLLLoss(log_input=False, full=True, eps=0.1, reduction=r), "counts",
             pred="positive"),
        Case("ce", lambda c: mc.CrossEntropyLoss(), lambda c, r, t: nn.CrossEntropyLoss(reduction=r), "labels"),
        Case("ce_weight", lambda c: mc.CrossEntropyLoss(weight=class_weights(c)),
             lambda c, r, t: nn.CrossEntropyLoss(weight=_vec(class_weights(c), t), reduction=r), "labels",
             class_weighted=True),
        Case("ce_smooth", lambda c: mc.CrossEntropyLoss(label_smoothing=0.2),
             lambda c, r, t: nn.CrossEntropyLoss(reduction=r, label_smoothing=0.2), "labels"),
        Case("ce_weight_smooth", lambda c: mc.CrossEntropyLoss(weight=class_weights(c), label_smoothing=0.35),
             lambda c, r, t: nn.CrossEntropyLoss(weight=_vec(class_weights(c), t), reduction=r,
                                                 label_smoothing=0.35), "labels", class_weighted=True),
        Case("ce_smooth_1", lambda c: mc.CrossEntropyLoss(label_smoothing=1.0),
             lambda c, r, t: nn.CrossEntropyLoss(reduction=r, label_smoothing=1.0), "labels"),
    ]
    return {c.name: c for c in cases}


CASES: dict = _cases()
NAMES = list(CASES)


def make_pred(case: Case, rng: np.random.Generator, b: int, c: int, dtype, scale: float = 2.0) -> np.ndarray:
    if case.pred == "positive":
        return rng.uniform(0.05, 5.0, (b, c)).astype(dtype)
    return (scale * rng.standard_normal((b, c))).astype(dtype)


def make_target(case: Case, rng: np.random.Generator, b: int, c: int, dtype) -> np.ndarray:
    """int64 class ids (b,), or (b, c) of dtype: normal values, probabilities with hard 0/1 mixed
    in, or counts (0, 1 and larger: both sides of the Stirling term's t > 1)."""
    if case.target == "labels":
        return rng.integers(0, c, size=b).astype(np.int64)
    if case.target == "values":
        return rng.standard_normal((b, c)).astype(dtype)
    if case.target == "counts":
        return rng.poisson(2.5, (b, c)).astype(dtype)
    t = rng.uniform(0.0, 1.0, size=(b, c))
    t[::3] = np.round(t[::3])
    return t.astype(dtype)


def torch_target(case: Case, target: np.ndarray):
    import torch

    return torch.from_numpy(target.astype(np.int64) if case.target == "labels" else target.copy())


def torch_value(case: Case, pred_t, target_t, c: int, w_t=None):
    """PyTorch's value of the loss (see the module docstring)."""
    import torch

    dt = pred_t.dtype
    if w_t is None:
        return case.torch_make(c, "mean", dt)(pred_t, target_t)
    v = case.torch_make(c, "none", dt)(pred_t, target_t)
    v = v.sum(dim=1) if v.ndim == 2 else v
    if case.class_weighted:
        n = torch.tensor(class_weights(c), dtype=dt)[target_t]
    else:
        n = torch.full_like(w_t, float(c) if case.target != "labels" else 1.0)
    return (w_t * v).sum() / (w_t * n).sum()
