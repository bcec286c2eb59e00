"""Fuzz cases (see fuzz_support.py): modules, losses, optimizers, building models, gradcheck,
parameter writes, constructors, threads."""

from __future__ import annotations

import math

import mlpcore as mc
import numpy as np
from fuzz_support import (  # noqa: F401 - _write_counts is the autouse fixture that saves the counts
    F32,
    F64,
    FLOATS,
    LOSSES,
    _write_counts,
    arrays,
    checks_off,
    converted,
    count,
    finite,
    fuzz,
    input_dtype,
    label_errors,
    labels,
    matrix_errors,
    maxabs,
    outcome,
    target_errors,
)
from hypothesis import given
from hypothesis import strategies as st

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
