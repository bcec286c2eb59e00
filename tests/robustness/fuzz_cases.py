"""Hypothesis fuzz cases for the public API.

Not collected by the normal test run (the file name does not start with ``test_``):
``tests/robustness/test_fuzz.py`` runs it in a subprocess, so that a crash (segfault, abort) fails a test
instead of killing the test run, and counts the cases. To run it directly:

    MLPCORE_FUZZ_EXAMPLES=300 python -m pytest tests/robustness/fuzz_cases.py -q

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
import math
import os

import mlpcore as mc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlpcore import cli

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


# ----- modules ----------------------------------------------------------------------------------------------

ACTIVATIONS = [
    mc.ReLU,
    mc.Sigmoid,
    mc.Tanh,
    mc.GELU,
    mc.SiLU,
    mc.Softmax,
    mc.Identity,
    lambda: mc.LeakyReLU(0.2),
    lambda: mc.ELU(1.5),
    lambda: mc.LeakyReLU(-3.0),
]


@fuzz(1.5)
@given(
    st.data(), st.sampled_from(range(len(ACTIVATIONS))), st.integers(1, 4), st.integers(1, 4), st.booleans()
)
def test_activation_forward_backward(data, which, B, C, check):
    count("activation")
    with checks_off(check):
        act = ACTIVATIONS[which]()
        x = data.draw(arrays((B, C)))
        dt = input_dtype(x)
        ok, y = outcome(lambda: act(x), matrix_errors(x, dt))
        if not ok:
            ok, _ = outcome(
                lambda: act.backward(np.ones((B, C), dt)), {RuntimeError} if "_a" not in vars(act) else set()
            )
            return
        xs = np.asarray(x)
        assert y.shape == xs.shape and y.dtype == dt
        if finite(converted(xs, dt)) and maxabs(xs) <= 1e30:
            assert np.all(np.isfinite(y)), "finite input, non-finite activation"
        g = data.draw(arrays(y.shape))
        ok, gx = outcome(lambda: act.backward(g), matrix_errors(g, dt, cols=y.shape[1], rows=y.shape[0]))
        if ok:
            assert gx.shape == y.shape and gx.dtype == dt
            if finite(converted(xs, dt)) and finite(converted(g, dt)) and max(maxabs(xs), maxabs(g)) <= 1e30:
                assert np.all(np.isfinite(gx)), "finite input and gradient, non-finite backward"


@fuzz()
@given(
    st.data(),
    st.integers(1, 4),
    st.integers(1, 4),
    st.booleans(),
    st.sampled_from(FLOATS),
    st.booleans(),
    st.booleans(),
)
def test_linear_forward_backward(data, fin, fout, bias, dtype, check, backward_first):
    count("linear")
    with checks_off(check):
        lin = mc.Linear(fin, fout, bias=bias, dtype=dtype, seed=0)
        B = data.draw(st.integers(1, 4))
        if backward_first:
            outcome(lambda: lin.backward(np.ones((B, fout), dtype)), {RuntimeError})
        x = data.draw(arrays((B, fin)))
        ok, y = outcome(lambda: lin(x), matrix_errors(x, dtype, cols=fin))
        if not ok:
            return
        B = y.shape[0]
        assert y.shape == (B, fout) and y.dtype == dtype
        small_x = finite(converted(x, dtype)) and maxabs(x) <= 1e30
        if small_x:
            assert np.all(np.isfinite(y))
        g = data.draw(arrays((B, fout)))
        lin.zero_grad()
        ok, gx = outcome(lambda: lin.backward(g), matrix_errors(g, dtype, cols=fout, rows=B))
        if ok:
            assert gx.shape == (B, fin) and gx.dtype == dtype
            if (
                small_x
                and finite(converted(g, dtype))
                and maxabs(x) * maxabs(g) * B <= 1e30
                and maxabs(g) <= 1e30
            ):
                assert np.all(np.isfinite(lin.weight.grad)) and np.all(np.isfinite(gx))
        else:  # a refused backward leaves the gradients untouched
            assert np.all(lin.weight.grad == 0)


def _other_module(kind: str, c: int, dtype):
    if kind == "dropout":
        return mc.Dropout(0.3, seed=1), c
    if kind == "maxout":
        return mc.Maxout(c, 2, pieces=2, dtype=dtype, seed=0), 2
    if kind == "residual":
        return mc.Residual(mc.Linear(c, c, dtype=dtype, seed=0)), c
    return mc.Residual(mc.Sequential(mc.Linear(c, c, dtype=dtype, seed=0), mc.Tanh())), c


@fuzz()
@given(
    st.data(),
    st.sampled_from(["dropout", "maxout", "residual", "residual-seq"]),
    st.integers(1, 4),
    st.sampled_from(FLOATS),
    st.booleans(),
    st.booleans(),
)
def test_dropout_maxout_residual(data, kind, c, dtype, train, check):
    count("dropout/maxout/residual")
    with checks_off(check):
        m, out_c = _other_module(kind, c, dtype)
        m.train(train)
        B = data.draw(st.integers(1, 4))
        x = data.draw(arrays((B, c)))
        dt = input_dtype(x) if kind == "dropout" else dtype
        ok, y = outcome(lambda: m(x), matrix_errors(x, dt, cols=None if kind == "dropout" else c))
        if not ok:
            return
        B = y.shape[0]
        assert y.shape == (B, out_c if kind != "dropout" else np.shape(x)[1]) and y.dtype == dt
        if finite(converted(x, dt)) and maxabs(x) <= 1e30:
            assert np.all(np.isfinite(y))
        g = data.draw(arrays(y.shape))
        ok, gx = outcome(lambda: m.backward(g), matrix_errors(g, dt, cols=y.shape[1], rows=B))
        if ok:
            assert gx.shape == np.shape(x) and gx.dtype == dt


# ----- losses -----------------------------------------------------------------------------------------------

LOSSES = {"mse": mc.MSELoss, "bce": mc.BCEWithLogitsLoss, "ce": mc.CrossEntropyLoss}


@fuzz(1.5)
@given(st.data(), st.sampled_from(sorted(LOSSES)), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_losses(data, name, B, C, check):
    count("loss")
    with checks_off(check):
        loss = LOSSES[name]()
        pred = data.draw(arrays((B, C)))
        dt = input_dtype(pred)
        perr = matrix_errors(pred, dt)
        if not perr:
            B, C = np.shape(pred)
        if name == "ce":
            target = data.draw(labels(B, C))
            terr = label_errors(target, B, C)
        else:
            target = data.draw(arrays((B,) if C == 1 and data.draw(st.booleans()) else (B, C)))
            terr = target_errors(target, dt, B, C)
        ok, value = outcome(lambda: loss(pred, target), perr or terr)
        if not ok:
            if loss._grad is None:
                outcome(loss.backward, {RuntimeError})
            return
        assert isinstance(value, float)
        grad = loss.backward()
        assert grad.shape == (B, C) and grad.dtype == dt
        moderate = max(maxabs(pred), maxabs(target)) <= 1e15
        if finite(converted(pred, dt)) and finite(converted(target, dt)) and moderate:
            assert math.isfinite(value) and np.all(np.isfinite(grad))
            if name != "bce":  # BCE may go below 0 for targets outside [0, 1]
                assert value >= 0.0


# ----- optimizers -------------------------------------------------------------------------------------------

NUMBERS = [
    0.1,
    0.9,
    0.0,
    -0.5,
    1.0,
    1e-300,
    1e300,
    float("nan"),
    float("inf"),
    True,
    "0.1",
    None,
    np.float32(0.5),
    np.int64(1),
    3,
]


def positive_ok(v, allow_zero=False) -> bool:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(v) and (v > 0 or (allow_zero and v == 0))


def unit_ok(v) -> bool:
    return (
        (not isinstance(v, (str, type(None)))) and isinstance(v, (int, float, np.floating)) and 0.0 <= v < 1.0
    )


@fuzz()
@given(
    st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]),
    st.sampled_from(NUMBERS),
    st.sampled_from(NUMBERS),
    st.sampled_from(NUMBERS),
    st.sampled_from(NUMBERS),
    st.booleans(),
    st.sampled_from(FLOATS),
    st.integers(0, 2**32 - 1),
)
def test_optimizers(name, lr, a, b, wd, flag, dtype, seed):
    count("optimizer")
    model = mc.Sequential(
        mc.Linear(3, 4, dtype=dtype, seed=0), mc.Tanh(), mc.Linear(4, 2, dtype=dtype, seed=1)
    )
    ps = model.parameters()
    ok_lr, ok_wd = positive_ok(lr), positive_ok(wd, allow_zero=True)
    if name == "sgd":
        make = lambda: mc.SGD(ps, lr=lr, momentum=a, nesterov=flag, weight_decay=wd)  # noqa: E731
        valid = (
            ok_lr
            and ok_wd
            and positive_ok(a, allow_zero=True)
            and not (flag and positive_ok(a, True) and a == 0)
        )
    elif name in ("adam", "adamw"):
        cls = mc.Adam if name == "adam" else mc.AdamW
        make = lambda: cls(ps, lr=lr, betas=(a, b), eps=1e-8, weight_decay=wd)  # noqa: E731
        valid = ok_lr and ok_wd and unit_ok(a) and unit_ok(b)
    else:
        def make():
            return mc.RMSprop(ps, lr=lr, alpha=a, eps=1e-8, weight_decay=wd, momentum=b, centered=flag)

        valid = ok_lr and ok_wd and unit_ok(a) and positive_ok(b, allow_zero=True)
    ok, opt = outcome(make, set() if valid else {ValueError, TypeError})
    if not ok:
        return
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((5, 3)).astype(dtype), rng.integers(0, 2, 5)
    loss = mc.CrossEntropyLoss()
    tame = all(not isinstance(v, (int, float, np.floating)) or abs(float(v)) <= 1.0 for v in (lr, a, b, wd))
    if name == "rmsprop" and a < 0.5:
        tame = False  # alpha 0: the (centered) average is g^2 itself, steps of lr * g / eps can blow up

    def steps():
        for _ in range(3):
            opt.zero_grad()
            loss(model(x), y)  # weights blown up by lr / weight_decay 1e300: the loss refuses NaN predictions
            model.backward(loss.backward())
            opt.step()

    ok, _ = outcome(steps, set() if tame else {ValueError}, may_succeed=True)
    if tame:
        assert all(np.all(np.isfinite(p.data)) for p in ps)
    if not ok:
        return
    # the compiled path drives the same optimizer
    net = model.compiled()
    value = net.train_step(opt._core, loss.kind, x, y, check_finite=False)
    assert isinstance(value, float)
    if tame:
        assert math.isfinite(value)


# ----- building models --------------------------------------------------------------------------------------


@st.composite
def layer_specs(draw):
    """A list of (kind, args) for Sequential: widths chain most of the time, not always."""
    n = draw(st.integers(0, 5))
    specs, width = [], draw(st.integers(1, 4))
    for _ in range(n):
        kind = draw(st.sampled_from(["linear"] * 4 + ["act", "dropout", "maxout", "residual", "seq", "junk"]))
        fin = width if draw(st.integers(0, 5)) else draw(st.integers(1, 4))
        fout = draw(st.integers(1, 4))
        specs.append((kind, fin, fout, draw(st.sampled_from([F32] * 8 + [F64]))))
        if kind in ("linear", "maxout", "seq"):
            width = fout
        elif kind == "residual":
            width = fin
    return specs


def build(kind, fin, fout, dtype):
    if kind == "linear":
        return mc.Linear(fin, fout, dtype=dtype, seed=0)
    if kind == "act":
        return mc.GELU()
    if kind == "dropout":
        return mc.Dropout(0.2, seed=0)
    if kind == "maxout":
        return mc.Maxout(fin, fout, pieces=2, dtype=dtype, seed=0)
    if kind == "residual":
        return mc.Residual(mc.Linear(fin, fin, dtype=dtype, seed=0))
    if kind == "seq":
        return mc.Sequential(mc.Linear(fin, fout, dtype=dtype, seed=0), mc.ReLU())
    return np.tanh  # not a Module


def expected_chain(specs):
    """(exception types the constructor may raise, output width, input width)."""
    errs, width, fin0 = set(), None, None
    if not specs:
        return {ValueError}, None, None
    if any(k == "junk" for k, *_ in specs):
        errs.add(TypeError)
    if len({dt for k, _, _, dt in specs if k in ("linear", "maxout", "residual", "seq")}) > 1:
        errs.add(TypeError)
    for kind, fin, fout, _ in specs:
        if kind in ("act", "dropout", "junk"):
            continue
        if width is not None and fin != width:
            errs.add(ValueError)
        if fin0 is None:
            fin0 = fin
        width = fin if kind == "residual" else fout
    return errs, width, fin0


@fuzz()
@given(layer_specs(), st.integers(0, 2**32 - 1))
def test_sequential_construction(specs, seed):
    count("sequential")
    errs, width, fin = expected_chain(specs)
    modules = [build(*s) for s in specs]
    ok, model = outcome(lambda: mc.Sequential(*modules), errs)
    if not ok or fin is None:
        return
    model.eval()
    dtype = model.dtype
    x = np.random.default_rng(seed).standard_normal((3, fin)).astype(dtype)
    y = model(x)
    assert y.shape == (3, width) and y.dtype == dtype and np.all(np.isfinite(y))
    net = model.compiled()
    assert net is not None and net.in_features == fin and net.out_features == width
    np.testing.assert_allclose(net.predict(x), y, rtol=1e-5, atol=1e-6)


# ----- the compiled network ---------------------------------------------------------------------------------

BATCH_SIZES = [1, 2, 3, 7, 1000, 0, -1, 10**12]


@fuzz(2.0)
@given(
    st.data(),
    st.sampled_from(["train_step", "train_epoch", "evaluate", "predict", "forward"]),
    st.sampled_from(sorted(LOSSES)),
    st.integers(1, 4),
    st.integers(1, 3),
    st.sampled_from(FLOATS),
    st.sampled_from(BATCH_SIZES),
    st.booleans(),
    st.sampled_from([0, 1, 2**64 - 1, -1]),
    st.booleans(),
    st.booleans(),
)
def test_compiled_network_calls(data, method, lname, fin, fout, dtype, bs, shuffle, seed, check, guard):
    count("compiled")
    with checks_off(check):
        model = mc.Sequential(
            mc.Linear(fin, 5, dtype=dtype, seed=0), mc.ReLU(), mc.Linear(5, fout, dtype=dtype, seed=1)
        )
        net = model.compiled()
        opt = mc.SGD(model.parameters(), lr=0.01)
        kind = LOSSES[lname].kind
        n = data.draw(st.integers(1, 6))
        X = data.draw(arrays((n, fin)))
        errs = matrix_errors(X, dtype, cols=fin)
        if not errs:
            n = np.shape(X)[0]
        if lname == "ce":
            y = data.draw(labels(n, fout))
            yerr = label_errors(y, n, fout)
        else:
            y = data.draw(arrays((n,) if fout == 1 and data.draw(st.booleans()) else (n, fout)))
            yerr = target_errors(y, dtype, n, fout)
        if method in ("train_step", "train_epoch", "evaluate"):
            errs = errs or yerr
        if method in ("train_epoch", "evaluate", "predict") and bs < 1:
            errs = errs | {ValueError}  # checked before or after the data, either error is right
        if method == "train_epoch" and seed < 0:
            errs = {TypeError}  # the seed is a uint64: pybind11 refuses it before any check
        huge = (
            not finite(converted(X, dtype))
            or maxabs(X) > 1e15
            or (
                method != "predict"
                and lname != "ce"
                and (not finite(converted(y, dtype)) or maxabs(y) > 1e15)
            )
        )
        if not errs and huge and guard and method in ("train_step", "train_epoch"):
            errs = {RuntimeError}  # the non-finite-loss guard may stop the step; it may also not trigger
            allowed_success = True
        else:
            allowed_success = False
        calls = {
            "train_step": lambda: net.train_step(opt._core, kind, X, y, check_finite=guard),
            "train_epoch": lambda: net.train_epoch(opt._core, kind, X, y, bs, shuffle, seed, 0, guard),
            "evaluate": lambda: net.evaluate(kind, X, y, bs),
            "predict": lambda: net.predict(X, bs),
            "forward": lambda: net.forward(X),
        }
        before = [p.data.copy() for p in model.parameters()]
        try:
            result = calls[method]()
            ok = True
        except RuntimeError as e:
            assert errs == {RuntimeError}, f"unexpected RuntimeError: {e}"
            assert "non-finite loss" in str(e) and ("epoch 1, batch" in str(e) or "train_step" in str(e))
            ok = False
        except (ValueError, TypeError) as e:
            assert errs and type(e) in errs, f"{type(e).__name__} ({e}) raised, expected one of {errs}"
            ok = False
            for p, w in zip(model.parameters(), before):  # a refused call changes nothing
                np.testing.assert_array_equal(p.data, w)
        else:
            assert not errs or allowed_success, f"invalid input accepted; expected one of {errs}"
        if not ok:
            return
        if method in ("predict", "forward"):
            assert result.shape == (n, fout) and result.dtype == dtype
            if not huge:
                assert np.all(np.isfinite(result))
        elif method == "evaluate":
            value, correct = result
            assert isinstance(correct, int) and 0 <= correct <= n
            assert correct == 0 or lname == "ce"
            if not huge:
                assert math.isfinite(value)
        else:
            value = result.loss if method == "train_epoch" else result
            assert isinstance(value, float)
            if not huge:
                assert math.isfinite(value) and all(np.all(np.isfinite(p.data)) for p in model.parameters())


# ----- gradcheck, parameters, constructors, threads ---------------------------------------------------------

SMOOTH = [mc.Tanh, mc.Sigmoid, mc.GELU, mc.SiLU, mc.Identity, mc.Softmax]


@fuzz(0.5)
@given(
    st.data(),
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from(range(len(SMOOTH))),
    st.sampled_from([F64] * 5 + [F32]),
    st.sampled_from([1e-6] * 6 + [0.0, -1.0, 2.0, float("nan"), "x"]),
)
def test_gradcheck(data, fin, fout, which, dtype, eps):
    count("gradcheck")
    model = mc.Sequential(mc.Linear(fin, fout, dtype=dtype, seed=0), SMOOTH[which]())
    x = data.draw(arrays((data.draw(st.integers(1, 3)), fin)))
    a = np.asarray(x)
    errs = set()
    if not isinstance(eps, float) or not 0 < eps < 1:
        errs.add(ValueError)
    if a.dtype.kind not in "fiu":
        errs.add(TypeError)
    elif a.ndim != 2:
        errs.add(ValueError)
    elif not errs:
        if dtype != F64:
            errs.add(ValueError)
        errs |= matrix_errors(a.astype(np.float64), F64, cols=fin)
    ok, report = outcome(lambda: mc.gradcheck(model, x, eps=eps), errs)
    if ok:
        assert set(report) == {"input", "0.weight", "0.bias"}
        if 1e-3 <= maxabs(x) <= 10:
            assert max(report.values()) < 1e-4, report


@fuzz()
@given(
    st.data(),
    st.integers(1, 4),
    st.integers(1, 4),
    st.sampled_from(FLOATS),
    st.sampled_from(["weight", "bias"]),
    st.booleans(),
)
def test_parameter_writes(data, fin, fout, dtype, which, grad):
    count("parameter")
    lin = mc.Linear(fin, fout, dtype=dtype, seed=0)
    p = getattr(lin, which)
    value = data.draw(arrays(p.shape))
    a = np.asarray(value)
    errs = set()
    if a.dtype.kind not in "fiu":
        errs.add(TypeError)
    elif a.shape != p.shape:
        errs.add(ValueError)
    elif not finite(converted(a, dtype)):
        errs.add(ValueError)  # parameters never take NaN / Inf, whatever set_check_finite says
    before = p.data.copy()
    ok, _ = outcome(lambda: setattr(p, "grad" if grad else "data", value), errs)
    got = p.grad if grad else p.data
    if ok:
        np.testing.assert_array_equal(got, converted(a, dtype))
    else:
        np.testing.assert_array_equal(p.data, before)


ARGS = [1, 3, 0, -2, 2.5, True, None, "4", np.int64(2), 2**70]


@fuzz()
@given(
    st.sampled_from(ARGS),
    st.sampled_from(ARGS),
    st.sampled_from([True, False, 0]),
    st.sampled_from(["he_uniform", "he_normal", "xavier_uniform", "xavier_normal", "zeros", "glorot", None]),
    st.sampled_from([np.float32, np.float64, "float32", np.float16, np.int32, None, "nonsense"]),
    st.sampled_from([None, 0, 1, 2**64 - 1, 2**64, -1, 1.5, "1"]),
    st.sampled_from([0.0, 0.5, 0.999, 1.0, -0.1, float("nan"), None, True, "0.5"]),
)
def test_module_constructors(fin, fout, bias, init, dtype, seed, p):
    count("constructors")

    def feature_ok(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= 64

    def feature_err(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 64

    errs = set()
    if not (feature_ok(fin) and feature_ok(fout)):
        errs.add(ValueError)
        if feature_err(fin) or feature_err(fout):
            errs.add(TypeError)  # 2**70 does not fit the core's int64 (pybind11 refuses it)
    if init not in ("he_uniform", "he_normal", "xavier_uniform", "xavier_normal", "zeros"):
        errs.add(ValueError)
    if dtype not in (np.float32, np.float64, "float32"):
        errs.add(TypeError)
    if not (seed is None or (isinstance(seed, int) and seed >= 0)):
        errs.add(ValueError)
    outcome(lambda: mc.Linear(fin, fout, bias=bias, init=init, dtype=dtype, seed=seed), errs)
    p_ok = isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p < 1
    outcome(lambda: mc.Dropout(p, seed=0), set() if p_ok else {ValueError})
    f_ok = isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
    outcome(lambda: mc.LeakyReLU(p), set() if f_ok else {ValueError})
    outcome(lambda: mc.ELU(p), set() if f_ok else {ValueError})
    errs = (
        set() if feature_ok(fin) and feature_ok(fout) and fin <= 8 and fout <= 8 else {ValueError, TypeError}
    )
    outcome(lambda: mc.Maxout(fin, fout, pieces=fin if feature_ok(fin) else 2, seed=0), errs)


@fuzz(0.25)
@given(st.sampled_from([1, 2, 0, -1, -(2**40), 2**40, 2.0, "2", None]))
def test_set_num_threads(n):
    count("threads")
    before, pinned = mc.get_num_threads(), mc._core.num_threads_pinned()
    try:
        if (n in (1, 2) and isinstance(n, int)) or n is None:  # None: the automatic policy
            errs = set()
        elif n in (0, -1):
            errs = {ValueError}
        else:  # not an int, or beyond the C int: pybind11's TypeError
            errs = {TypeError, ValueError}
        ok, _ = outcome(lambda: mc.set_num_threads(n), errs)
        if ok and n is None:
            assert not mc._core.num_threads_pinned()
        else:
            assert mc.get_num_threads() == (int(n) if ok else before)
    finally:
        mc.set_num_threads(before if pinned else None)


# ----- the Trainer ------------------------------------------------------------------------------------------


def pos_int_ok(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


@fuzz(0.8)
@given(
    st.data(),
    st.sampled_from(sorted(LOSSES)),
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from(FLOATS),
    st.sampled_from([None, None, False]),
    st.sampled_from([1, 2, 1, 0, -1, 1.5, True, "2"]),
    st.sampled_from([None, 1, 2, 4, 1000, 0, -3, 2.5]),
    st.sampled_from([None] * 5 + [0.25, 0.0, 1.0, "x"]),
    st.sampled_from([0, 0, 7, None, -1, 1.5]),
    st.booleans(),
    st.booleans(),
)
def test_trainer(data, lname, fin, fout, dtype, compiled, epochs, bs, vsplit, seed, shuffle, check):
    count("trainer")
    with checks_off(check):
        model = mc.Sequential(
            mc.Linear(fin, 4, dtype=dtype, seed=0), mc.Tanh(), mc.Linear(4, fout, dtype=dtype, seed=1)
        )
        tr = mc.Trainer(
            model,
            loss=LOSSES[lname](),
            optimizer=mc.SGD(model.parameters(), lr=0.01),
            batch_size=3,
            compiled=compiled,
        )
        n = data.draw(st.integers(1, 6))
        X = data.draw(arrays((n, fin)))
        a = np.asarray(X)
        errs = set()
        if a.ndim != 2 or a.shape[0] == 0:
            errs.add(ValueError)
        else:
            n = a.shape[0]
            errs |= matrix_errors(a, dtype, cols=fin)
        y = (
            data.draw(labels(n, fout))
            if lname == "ce"
            else data.draw(arrays((n,) if fout == 1 and data.draw(st.booleans()) else (n, fout)))
        )
        yerr = label_errors(y, n, fout) if lname == "ce" else target_errors(y, dtype, n, fout)
        if yerr and compiled is False:
            yerr = {TypeError, ValueError}  # module by module: the dtype is checked before the shape
        if np.ndim(y) == 0 or (a.ndim >= 1 and np.shape(y)[0] != a.shape[0]):
            yerr = {ValueError}
        errs |= yerr
        if not (pos_int_ok(epochs) and (bs is None or pos_int_ok(bs))) or (
            seed is not None and not (isinstance(seed, int) and seed >= 0)
        ):
            errs.add(ValueError)
        if vsplit is not None:
            if isinstance(vsplit, str) or not 0 < vsplit < 1 or int(n * (1 - vsplit)) in (0, n):
                errs.add(ValueError)
        huge = (
            not finite(converted(X, dtype))
            or maxabs(X) > 1e15
            or (lname != "ce" and (not finite(converted(y, dtype)) or maxabs(y) > 1e15))
        )
        try:
            h = tr.fit(
                X,
                y,
                epochs=epochs,
                batch_size=bs,
                validation_split=vsplit,
                seed=seed,
                shuffle=shuffle,
                verbose=0,
            )
        except (ValueError, TypeError, RuntimeError) as e:
            if type(e) is RuntimeError and not errs and huge:
                assert "non-finite loss" in str(e)  # the guard; or (module path) the next module's edge check
                return
            if type(e) is ValueError and not errs and huge and compiled is False:
                return  # module by module, a NaN output is refused at the loss's edge
            assert errs and type(e) in errs, f"{type(e).__name__} ({e}) raised, expected one of {errs}"
            return
        assert not errs, f"invalid input accepted; expected one of {errs}"
        assert len(h.history["loss"]) == epochs
        if not huge:
            assert all(math.isfinite(v) for v in h.history["loss"])
            p = tr.predict(X)
            assert p.shape == (n, fout) and np.all(np.isfinite(p))
            logs = tr.evaluate(X, y)
            assert all(math.isfinite(v) for v in logs.values())
            assert math.isfinite(tr.train_on_batch(X, y))


# ----- checkpoints ------------------------------------------------------------------------------------------

_CKPT = {}


def checkpoint_bytes() -> tuple:
    if not _CKPT:
        model = mc.Sequential(
            mc.Linear(3, 4, seed=0), mc.ReLU(), mc.Dropout(0.1, seed=0), mc.Linear(4, 2, seed=1)
        )
        opt = mc.Adam(model.parameters())
        _CKPT["model"] = model
        _CKPT["bytes"] = mc.save_bytes(model, optimizer=opt, epoch=3, extra={"classes": ["a", "b"]})
    return _CKPT["bytes"], _CKPT["model"]


@fuzz(0.8)
@given(
    st.sampled_from(["flip", "flip", "truncate", "header-length", "junk", "append", "header-text", "empty"]),
    st.integers(0, 2**32 - 1),
    st.integers(1, 8),
)
def test_corrupt_checkpoints(kind, seed, k):
    """Damaged checkpoint bytes load or raise ValueError (never another exception, never a crash)."""
    count("checkpoint")
    good, model = checkpoint_bytes()
    rng = np.random.default_rng(seed)
    b = bytearray(good)
    if kind == "flip":
        for _ in range(k):
            b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        b = b[: rng.integers(len(b))]
    elif kind == "header-length":
        b[:8] = int(rng.integers(0, 2**63 - 1, dtype=np.int64) >> int(rng.integers(0, 60))).to_bytes(
            8, "little"
        )
    elif kind == "junk":
        b = bytearray(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes())
    elif kind == "append":
        b += rng.integers(0, 256, k * 10, dtype=np.uint8).tobytes()
    elif kind == "header-text":  # valid length, damaged JSON text
        n = int.from_bytes(b[:8], "little")
        i = 8 + int(rng.integers(n))
        b[i : i + 1] = bytes([int(rng.choice(list(b'{}[]":,0a\\ ')))])
    else:
        b = bytearray()
    data = bytes(b)
    ok, loaded = outcome(lambda: mc.load_bytes(data), {ValueError}, may_succeed=True)
    if ok:
        x = np.ones((2, 3), np.float32)
        loaded.eval()
        out = loaded(x) if all(np.all(np.isfinite(p.data)) for p in loaded.parameters()) else None
        assert out is None or out.shape == (2, 2)
    ok, ck = outcome(lambda: mc.io.load_checkpoint_bytes(data, model=model), {ValueError}, may_succeed=True)
    if ok:
        assert ck["model"] is model


# ----- the command line -------------------------------------------------------------------------------------

_FILES = {}


def cli_files(tmp: str) -> dict:
    """Small data files, good and bad, and a trained checkpoint (made once per run)."""
    if _FILES:
        return _FILES
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] > 0).astype(int)

    def write(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    rows = "\n".join(",".join(f"{v:.4f}" for v in r) + f",{c}" for r, c in zip(X, y))
    _FILES["good"] = write("good.csv", "a,b,c,label\n" + rows + "\n")
    _FILES["names"] = write(
        "names.csv",
        "\n".join(",".join(f"{v:.3f}" for v in r) + (",yes" if c else ",no") for r, c in zip(X, y)) + "\n",
    )
    _FILES["regress"] = write(
        "regress.csv", "\n".join(",".join(f"{v:.4f}" for v in r) + f",{r.sum():.4f}" for r in X) + "\n"
    )
    _FILES["nan"] = write("nan.csv", rows.replace("0.", "nan", 3) + "\n")
    _FILES["ragged"] = write("ragged.csv", rows + "\n1,2\n")
    _FILES["text"] = write("text.csv", "a,b\nx,y\nz,w\n")
    _FILES["one-class"] = write("one.csv", "\n".join(f"{v:.3f},1" for v in X[:, 0]) + "\n")
    _FILES["one-row"] = write("row.csv", "1,2,3,0\n")
    _FILES["empty"] = write("empty.csv", "")
    _FILES["features"] = write("features.csv", "\n".join(",".join(f"{v:.4f}" for v in r) for r in X) + "\n")
    _FILES["wide"] = write("wide.csv", "\n".join(",".join(["1.0"] * 7) for _ in range(5)) + "\n")
    npz = os.path.join(tmp, "data.npz")
    np.savez(npz, X=X, y=y)
    _FILES["npz"] = npz
    _FILES["missing"] = os.path.join(tmp, "missing.csv")
    _FILES["txt"] = write("data.txt", rows)
    model_path = os.path.join(tmp, "model.safetensors")
    assert (
        cli.main(
            [
                "train",
                "--data",
                _FILES["good"],
                "--epochs",
                "1",
                "--hidden",
                "4",
                "--no-progress",
                "--out",
                model_path,
            ]
        )
        == 0
    )
    _FILES["model"] = model_path
    _FILES["junk-model"] = write("junk.safetensors", "not a checkpoint")
    _FILES["tmp"] = tmp
    return _FILES


OPTIONS = {
    "--epochs": ["1", "2", "0", "-1", "x"],
    "--hidden": ["4", "3,3", "0", "a", ""],
    "--lr": ["0.01", "-1", "nan", "inf", "0"],
    "--batch-size": ["8", "1", "0", "100000"],
    "--test-size": ["0.2", "0.5", "0", "1", "1.5"],
    "--threads": ["1", "2", "0"],
    "--task": ["auto", "classification", "regression", "other"],
    "--target": ["-1", "0", "label", "9", "zz"],
    "--activation": ["relu", "tanh", "gelu", "nope"],
    "--optimizer": ["sgd", "adam", "adamw", "x"],
    "--seed": ["0", "3", "-1"],
    "--device": ["cpu", "tpu"],
}


@fuzz(0.3)
@given(
    st.data(),
    st.sampled_from(["train", "train", "predict", "predict", "info", "bogus", None]),
    st.sampled_from(
        [
            "good",
            "names",
            "regress",
            "nan",
            "ragged",
            "text",
            "one-class",
            "one-row",
            "empty",
            "features",
            "wide",
            "npz",
            "missing",
            "txt",
            "moons",
        ]
    ),
)
def test_cli(data, command, dataset):
    """`mlpcore ...` in-process with random, often invalid, arguments and files: it returns 0 or 1
    (with a message), or argparse exits with 2; nothing else escapes."""
    count("cli")
    import tempfile

    files = cli_files(_FILES.get("tmp") or tempfile.mkdtemp(prefix="mlpcore-fuzz-"))
    argv = [] if command is None else [command]
    if command == "train":
        argv += [
            "--data",
            files.get(dataset, dataset),
            "--no-progress",
            "--out",
            os.path.join(files["tmp"], "out.safetensors"),
            "--epochs",
            "1",
            "--hidden",
            "4",
        ]
        for opt in data.draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=3, unique=True)):
            argv += [opt, data.draw(st.sampled_from(OPTIONS[opt]))]
    elif command == "predict":
        argv += [
            files.get(dataset, dataset),
            "--model",
            files[data.draw(st.sampled_from(["model", "model", "junk-model", "missing"]))],
        ]
        if data.draw(st.booleans()):
            argv += ["--target", data.draw(st.sampled_from(OPTIONS["--target"]))]
    threads = mc.get_num_threads()
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse: usage errors exit 2, --help / --version exit 0
        code = e.code
        assert code in (0, 2), f"argparse exited with {code} for {argv}"
        return
    finally:
        mc.set_num_threads(threads)
    assert code in (0, 1), f"exit code {code} for {argv}"
    if command == "train" and code == 0:
        m = mc.load(os.path.join(files["tmp"], "out.safetensors"))
        assert all(np.all(np.isfinite(p.data)) for p in m.parameters())
