"""Shared test helpers: one comparison function with explicit per-dtype tolerances (tinygrad's
``helper_test_op`` spirit), a PyTorch twin for each built-in op, and an independent
central-difference gradient.

Relative error everywhere is ``max|got - want| / max|want|`` (the scale of the whole tensor, as
``mlpcore.gradcheck`` reports it), so that entries that happen to be near zero do not turn
rounding noise into a huge elementwise ratio.

Every comparison against PyTorch records its error in ``MAX_REL_ERR``; ``conftest.py`` prints
the largest one per dtype at the end of the run.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

import mlpcore as mc

# Tolerances against PyTorch autograd, same dtype on both sides.
TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
# Tolerance against float64 central differences (eps = 1e-6: truncation ~1e-12, rounding ~1e-10).
FD_TOL = 1e-6
FD_EPS = 1e-6

# dtype name -> (largest relative error seen against PyTorch, where)
MAX_REL_ERR: dict = {}
# largest relative error seen against finite differences (float64)
MAX_FD_ERR: dict = {}
# dtype name -> (largest relative error of an exported ONNX graph run by onnxruntime, where)
MAX_ONNX_ERR: dict = {}


def rel_err(got, want) -> float:
    """max|got - want| / max|want| (absolute error when want is all zero)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if got.size == 0:
        return 0.0
    diff = float(np.max(np.abs(got - want)))
    scale = float(np.max(np.abs(want)))
    return diff / scale if scale > 0 else diff


def _record(table: dict, key: str, err: float, where: str) -> None:
    if key not in table or err > table[key][0]:
        table[key] = (err, where)


def assert_close_torch(got, want, dtype, where: str, tol: Optional[float] = None) -> float:
    """Compare an mlpcore result with PyTorch's (a numpy array or a torch tensor); record the error."""
    if hasattr(want, "detach"):
        want = want.detach().cpu().numpy()
    dt = np.dtype(dtype)
    err = rel_err(got, want)
    _record(MAX_REL_ERR, dt.name, err, where)
    bound = TOL[dt] if tol is None else tol
    assert err <= bound, f"{where}: relative error {err:.3e} > {bound:.0e} ({dt.name})"
    return err


def assert_close_fd(got, want, where: str, tol: float = FD_TOL) -> float:
    err = rel_err(got, want)
    _record(MAX_FD_ERR, "float64", err, where)
    assert err <= tol, f"{where}: relative error vs finite differences {err:.3e} > {tol:.0e}"
    return err


def import_torch():
    """PyTorch, or skip the calling test module. Pinned to one thread: these tests run tiny ops on
    a shared 2-core machine, where torch's intra-op threads mostly wait on each other (30x slower)."""
    import pytest

    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


# ----- ops and their PyTorch twins -----------------------------------------------------------------

def torch_activation(name: str, param: float = 0.0) -> Callable:
    """The PyTorch function for an mlpcore activation (GELU: exact erf form, torch's default)."""
    import torch
    import torch.nn.functional as F

    return {
        "identity": lambda x: x * 1,
        "relu": F.relu,
        "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=param),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "elu": lambda x: F.elu(x, alpha=param),
        "gelu": lambda x: F.gelu(x, approximate="none"),
        "silu": F.silu,
        "softmax": lambda x: torch.softmax(x, dim=1),
    }[name]


def mc_activation(name: str, param: float = 0.0) -> mc.Module:
    return {
        "identity": lambda: mc.Identity(),
        "relu": lambda: mc.ReLU(),
        "leaky_relu": lambda: mc.LeakyReLU(negative_slope=param),
        "sigmoid": lambda: mc.Sigmoid(),
        "tanh": lambda: mc.Tanh(),
        "elu": lambda: mc.ELU(alpha=param),
        "gelu": lambda: mc.GELU(),
        "silu": lambda: mc.SiLU(),
        "softmax": lambda: mc.Softmax(),
    }[name]()


# (name, parameter): every activation, with several slopes / alphas.
ACTIVATIONS = [
    ("identity", 0.0), ("relu", 0.0),
    ("leaky_relu", 0.0), ("leaky_relu", 0.01), ("leaky_relu", 0.2), ("leaky_relu", 3.0),
    ("sigmoid", 0.0), ("tanh", 0.0),
    ("elu", 1.0), ("elu", 0.5), ("elu", 2.0),
    ("gelu", 0.0), ("silu", 0.0), ("softmax", 0.0),
]
# One of each kind, for the (more expensive) whole-step tests.
ACTIVATIONS_ONE_EACH = [
    ("identity", 0.0), ("relu", 0.0), ("leaky_relu", 0.1), ("sigmoid", 0.0), ("tanh", 0.0), ("elu", 0.7),
    ("gelu", 0.0), ("silu", 0.0), ("softmax", 0.0),
]
LOSSES = ["mse", "cross_entropy", "bce_with_logits"]
DTYPES = [np.float64, np.float32]


def mc_loss(name: str):
    return {"mse": mc.MSELoss, "cross_entropy": mc.CrossEntropyLoss,
            "bce_with_logits": mc.BCEWithLogitsLoss}[name]()


def torch_loss(name: str):
    import torch

    return {"mse": torch.nn.MSELoss, "cross_entropy": torch.nn.CrossEntropyLoss,
            "bce_with_logits": torch.nn.BCEWithLogitsLoss}[name]()


def make_target(name: str, rng: np.random.Generator, batch: int, classes: int, dtype):
    """A valid target for loss ``name``: int64 class ids (B,) for cross-entropy, float (B, C)
    values for MSE, probabilities in [0, 1] (some exactly 0 or 1) for BCE."""
    if name == "cross_entropy":
        return rng.integers(0, classes, size=batch).astype(np.int64)
    if name == "mse":
        return rng.standard_normal((batch, classes)).astype(dtype)
    t = rng.uniform(0.0, 1.0, size=(batch, classes))
    t[::3] = np.round(t[::3])  # hard 0/1 labels mixed with soft ones
    return t.astype(dtype)


def torch_target(name: str, target: np.ndarray):
    import torch

    return torch.from_numpy(target.astype(np.int64) if name == "cross_entropy" else target.copy())


def away_from_kinks(x: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Move values at least ``margin`` away from 0, where relu-like ops have a kink."""
    return np.where(x >= 0, x + margin, x - margin).astype(x.dtype)


# ----- independent central differences -------------------------------------------------------------

def numeric_grad(f: Callable[[], float], arr: np.ndarray, eps: float = FD_EPS) -> np.ndarray:
    """d f / d arr by central differences, perturbing ``arr`` (float64) in place and restoring it."""
    assert arr.dtype == np.float64 and arr.flags.c_contiguous
    g = np.zeros_like(arr)
    flat, gf = arr.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gf[i] = (fp - fm) / (2.0 * eps)
    return g


class CrossingCounter:
    """Counts Python -> C++ crossings into ``mlpcore._core`` while active (a context manager):
    calls of its functions and methods (``sys.setprofile`` 'c_call' events), its constructors, and
    reads and writes of its properties (``net.training``, ``arena.numel``, ...), which the profiler
    does not see: those are wrapped in counting Python properties for the duration.
    ``calls`` lists what was counted, in order."""

    def __init__(self):
        self.calls: list = []
        self._saved: list = []

    @property
    def count(self) -> int:
        return len(self.calls)

    def _profile(self, frame, event, arg):
        if event == "c_call" and getattr(arg, "__module__", None) == "mlpcore._core":
            self.calls.append(getattr(arg, "__name__", repr(arg)))

    def __enter__(self) -> "CrossingCounter":
        import sys

        core = mc._core
        for cls in vars(core).values():
            if not isinstance(cls, type) or cls.__module__ != "mlpcore._core":
                continue
            for name, attr in list(vars(cls).items()):
                if type(attr) is property:  # instance properties (pybind's static ones are a subclass)
                    self._saved.append((cls, name, attr))
                    setattr(cls, name, self._counting_property(cls.__name__, name, attr))
                elif name == "__init__":
                    self._saved.append((cls, name, attr))
                    setattr(cls, name, self._counting_init(cls.__name__, attr))
        sys.setprofile(self._profile)
        return self

    def _counting_property(self, owner: str, name: str, orig: property) -> property:
        calls = self.calls

        def get(obj):
            calls.append(f"{owner}.{name}")
            return orig.__get__(obj, type(obj))

        def set_(obj, value):
            calls.append(f"{owner}.{name}=")
            orig.__set__(obj, value)

        return property(get, set_ if orig.fset is not None else None)

    def _counting_init(self, owner: str, orig):
        calls, hide = self.calls, self._hide

        def init(obj, *args, **kwargs):
            calls.append(owner)
            with hide():  # the call below is this constructor, counted once
                orig(obj, *args, **kwargs)

        return init

    def _hide(self):
        import contextlib
        import sys

        @contextlib.contextmanager
        def paused():
            sys.setprofile(None)
            try:
                yield
            finally:
                sys.setprofile(self._profile)

        return paused()

    def __exit__(self, *exc) -> None:
        import sys

        sys.setprofile(None)
        for cls, name, attr in reversed(self._saved):
            setattr(cls, name, attr)
        self._saved.clear()
