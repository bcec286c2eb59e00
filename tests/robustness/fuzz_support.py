"""The harness of the Hypothesis fuzz cases for the public API: settings, the case counter,
input strategies and the oracle (what the validation policy predicts for given inputs). The
cases are in fuzz_cases_modules.py (modules, losses, optimizers, model building, gradcheck,
parameters, constructors, threads) and fuzz_cases_training.py (the compiled network, the
Trainer, checkpoints, the command line).

Not collected by the normal test run (the file names do not start with ``test_``):
``tests/robustness/test_fuzz.py`` runs them in a subprocess, so that a crash (segfault, abort)
fails a test instead of killing the test run, and counts the cases. To run them directly:

    MLPCORE_FUZZ_EXAMPLES=300 python -m pytest tests/robustness/fuzz_cases_*.py -q

Hypothesis draws the structure of each case (shapes including 0 and 1-D / 3-D, dtypes including
int / float16 / bool / complex / object / str, NaN / Inf, memory layouts, value scales from 1e-42
to 1e300, batch sizes, learning rates, seeds, out-of-range labels); numpy fills the values from a
drawn seed. Every case either succeeds, and its result is checked (shape, dtype, finiteness
where the inputs make it certain), or raises exactly what the validation policy predicts for
those inputs: TypeError for a wrong type or dtype, ValueError for a wrong shape or value,
RuntimeError for a state error. Any other exception, an unpredicted error or an accepted bad
input fails the case. ``derandomize=True``: the same cases on every run.
"""

from __future__ import annotations

import json
import os

import mlpcore as mc
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("MLPCORE_FUZZ_EXAMPLES", "200"))
COUNTS: dict = {}


def fuzz(weight: float = 1.0):
    """Hypothesis settings of one fuzz test: reproducible, no deadline, no example database."""
    return settings(
        max_examples=max(1, int(EXAMPLES * weight)),
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    path = os.environ.get("MLPCORE_FUZZ_COUNTS")
    if path:
        with open(path, "w") as f:
            json.dump(COUNTS, f)


class checks_off:
    """set_check_finite(flag) for the duration of one case."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.old = mc.get_check_finite()
        mc.set_check_finite(self.enabled)

    def __exit__(self, *exc):
        mc.set_check_finite(self.old)


# ----- generated inputs ------------------------------------------------------------------------------------

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
LOSSES = {"mse": mc.MSELoss, "bce": mc.BCEWithLogitsLoss, "ce": mc.CrossEntropyLoss}
FLOATS = [F32, F64]
REFUSED_DTYPES = [
    np.float16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint64,
    np.bool_,
    np.complex64,
    np.complex128,
    object,
    str,
    ">f8",
    ">f4",
]  # big-endian floats are accepted (converted); listed here for variety
SCALES = [1.0, 1.0, 1e-3, 1e-30, 1e-42, 1e4, 1e15, 1e30, 1e38, 1e300]
LAYOUTS = ["C", "C", "C", "F", "strided", "reversed", "list"]


@st.composite
def arrays(draw, hint: tuple, float_only: bool = False):
    """An array (or nested list) usually of shape `hint` and a float dtype, often not."""
    if draw(st.integers(0, 5)) > 0:
        shape = tuple(hint)
    else:
        shape = tuple(draw(st.integers(0, 5)) for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))))
    dtype = draw(st.sampled_from(FLOATS * 6 + ([] if float_only else REFUSED_DTYPES)))
    scale = draw(st.sampled_from(SCALES))
    special = draw(st.sampled_from([None] * 6 + [np.nan, np.inf, -np.inf]))
    layout = draw(st.sampled_from(LAYOUTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    v = np.asarray(rng.standard_normal(shape) * scale)  # shape (): a 0-d array, not a Python float
    if special is not None and v.size:
        v.flat[rng.integers(v.size)] = special
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        a = rng.integers(-3 if dt.kind == "i" else 0, 4 if dt.kind != "b" else 2, shape).astype(dt)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            a = v.astype(dt)
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim >= 1:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        a = wide[..., ::2]
    elif layout == "reversed" and a.ndim >= 1:
        a = np.ascontiguousarray(a[::-1])[::-1]
    elif layout == "list":
        return a.tolist()
    return a


@st.composite
def labels(draw, rows: int, classes: int):
    """Class ids for `rows` predictions of `classes` classes: usually right, often not."""
    kind = draw(
        st.sampled_from(
            ["good"] * 6
            + [
                "range",
                "negative",
                "float",
                "onehot",
                "column",
                "short",
                "bool",
                "uint64",
                "list",
                "object",
                "huge",
            ]
        )
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, max(classes, 1), rows)
    if kind == "range" and rows:
        y[rng.integers(rows)] = classes
    elif kind == "negative" and rows:
        y[rng.integers(rows)] = -1
    elif kind == "float":
        return y.astype(np.float64)
    elif kind == "onehot":
        return np.eye(max(classes, 1))[y]
    elif kind == "column":
        return y[:, None]
    elif kind == "short":
        return y[: max(rows - 1, 0)]
    elif kind == "bool":
        return y.astype(bool)
    elif kind == "uint64":
        return y.astype(np.uint64) + np.uint64(2**63) * draw(st.integers(0, 1))
    elif kind == "list":
        return y.tolist()
    elif kind == "object":
        return y.astype(object)
    elif kind == "huge" and rows:
        y = y.astype(np.int64)
        y[0] = 2**40
    return y.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int16])))


# ----- the oracle: what the validation policy predicts ------------------------------------------------------


def input_dtype(x) -> np.dtype:
    """The dtype an activation / loss computes in (mlpcore.nn._input_dtype)."""
    dt = getattr(x, "dtype", None)
    if isinstance(dt, np.dtype) and dt.kind == "f" and dt.itemsize in (4, 8):
        return np.dtype(f"f{dt.itemsize}")
    return F32


def converted(x, dtype) -> np.ndarray:
    """`x` as the core would see it in `dtype` (zeros for non-real data, which is refused anyway)."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        return np.zeros(a.shape, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return a.astype(dtype)


def matrix_errors(x, dtype, cols=None, rows=None) -> set:
    """Exceptions allowed for `x` as a float matrix argument; empty: it must be accepted."""
    a = np.asarray(x)
    errs = set()
    if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):
        errs.add(TypeError)
    if (
        a.ndim != 2
        or 0 in a.shape
        or (cols is not None and a.shape[1] != cols)
        or (rows is not None and a.shape[0] != rows)
    ):
        errs.add(ValueError)
    if not errs and mc.get_check_finite() and not np.all(np.isfinite(converted(a, dtype))):
        errs.add(ValueError)
    return errs


def target_errors(t, dtype, rows, cols) -> set:
    """A regression / BCE target: like the prediction, or (rows,) for one column."""
    a = np.asarray(t)
    if a.ndim == 1 and cols == 1:
        a = a.reshape(-1, 1)
    return matrix_errors(a, dtype, cols, rows)


def label_errors(y, rows, classes) -> set:
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == classes and classes > 1:
        return {ValueError}  # one-hot
    errs = set()
    if a.dtype.kind not in "iu":
        errs.add(TypeError)
    if a.ndim != 1 or a.shape[0] != rows:
        errs.add(ValueError)
    if not errs and a.size:
        wide = a.astype(np.int64)  # uint64 >= 2**63 wraps negative, as in the core
        if wide.min() < 0 or wide.max() >= classes:
            errs.add(ValueError)
    return errs


def maxabs(x) -> float:
    a = np.asarray(x)
    if a.size == 0 or a.dtype.kind not in "fiu":
        return 0.0
    with np.errstate(invalid="ignore"):
        return float(np.max(np.abs(a.astype(np.float64))))


def finite(x) -> bool:
    a = np.asarray(x)
    return a.dtype.kind in "iu" or bool(np.all(np.isfinite(a)))


def outcome(fn, allowed: set, may_succeed: bool = False):
    """Run fn; it must raise one of `allowed` (with a message), or succeed when `allowed` is empty
    (or `may_succeed`). Returns (ok, result)."""
    try:
        result = fn()
    except (ValueError, TypeError, RuntimeError) as e:
        assert allowed, f"valid input refused: {type(e).__name__}: {e}"
        assert type(e) in allowed, f"{type(e).__name__} ({e}) raised, expected one of {allowed}"
        assert len(str(e)) > 10, f"unhelpful message {str(e)!r}"
        return False, None
    assert not allowed or may_succeed, (
        f"invalid input accepted; expected one of {sorted(t.__name__ for t in allowed)}"
    )
    return True, result
