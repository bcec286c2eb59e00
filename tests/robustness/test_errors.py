"""Bad input gets a clear Python error — ValueError / TypeError naming the argument, what was
expected and what was given; RuntimeError for state errors — and never a crash or garbage.

Policy checked here (see cpp/bindings/core.cpp): float32 and float64 arrays are accepted and
converted to the module's dtype; non-contiguous and Fortran-ordered arrays are copied to C order
and give exactly the C-order result; ints, float16, bool, complex, object and strings are
refused; NaN / Inf are refused unless ``mc.set_check_finite(False)``.
"""

import numpy as np
import pytest

import mlpcore as mc

F32 = np.float32


def _lin():
    return mc.Linear(3, 2, seed=0)


def _fitted(module, x):
    module(x)
    return module


X = np.ones((4, 3), F32)
P = np.zeros((4, 3), F32)  # a prediction: batch 4, 3 classes / outputs

# (id, call, exception, substrings the message must contain)
CASES = [
    # ---- wrong ndim / shape ----
    ("x 1-D", lambda: _lin()(np.ones(3, F32)), ValueError, ["x", "2-D", "(3,)"]),
    ("x 3-D", lambda: _lin()(np.ones((2, 2, 3), F32)), ValueError, ["x", "2-D", "(2,2,3)"]),
    ("x 0-D", lambda: _lin()(np.float32(1.0)), ValueError, ["x", "2-D"]),
    ("x wrong width", lambda: _lin()(np.ones((4, 5), F32)), ValueError, ["x", "expected 3 columns", "(4,5)"]),
    ("activation x 1-D", lambda: mc.ReLU()(np.ones(3, F32)), ValueError, ["x", "2-D", "(3,)"]),
    ("grad_output wrong width", lambda: _fitted(_lin(), X).backward(np.ones((4, 3), F32)), ValueError,
     ["grad_output", "expected 2 columns", "(4,3)"]),
    ("grad_output wrong batch", lambda: _fitted(_lin(), X).backward(np.ones((5, 2), F32)), ValueError,
     ["grad_output", "expected 4 rows", "(5,2)"]),
    ("activation grad_output wrong shape", lambda: _fitted(mc.Tanh(), X).backward(np.ones((4, 2), F32)),
     ValueError, ["grad_output", "expected 3 columns", "(4,2)"]),
    ("pred 1-D", lambda: mc.MSELoss()(np.zeros(4, F32), np.zeros(4, F32)), ValueError,
     ["pred", "2-D", "(4,)"]),
    ("mse target wrong width", lambda: mc.MSELoss()(P, np.zeros((4, 2), F32)), ValueError,
     ["target", "expected 3 columns", "(4,2)"]),
    ("bce target wrong width", lambda: mc.BCEWithLogitsLoss()(P, np.zeros((4, 1), F32)), ValueError,
     ["target", "expected 3 columns", "(4,1)"]),
    ("pred with zero columns", lambda: mc.MSELoss()(np.zeros((4, 0), F32), np.zeros((4, 0), F32)), ValueError,
     ["pred", "at least 1 column", "(4,0)"]),
    ("ce labels 2-D column", lambda: mc.CrossEntropyLoss()(P, np.zeros((4, 1), np.int64)), ValueError,
     ["target", "1-D", "(4,1)"]),
    # ---- prediction / target batch mismatch ----
    ("mse batch mismatch", lambda: mc.MSELoss()(P, np.zeros((3, 3), F32)), ValueError,
     ["target", "expected 4 rows", "(3,3)"]),
    ("bce batch mismatch", lambda: mc.BCEWithLogitsLoss()(P, np.zeros((5, 3), F32)), ValueError,
     ["target", "expected 4 rows", "(5,3)"]),
    ("ce batch mismatch", lambda: mc.CrossEntropyLoss()(P, np.zeros(3, np.int64)), ValueError,
     ["target", "3 labels", "4 rows"]),
    # ---- wrong dtype ----
    ("x int64", lambda: _lin()(np.ones((4, 3), np.int64)), TypeError, ["x", "float32 or float64", "int64"]),
    ("x int32", lambda: _lin()(np.ones((4, 3), np.int32)), TypeError, ["x", "float32 or float64", "int32"]),
    ("x float16", lambda: _lin()(np.ones((4, 3), np.float16)), TypeError,
     ["x", "float32 or float64", "float16"]),
    ("x object", lambda: _lin()(np.ones((4, 3), object)), TypeError, ["x", "float32 or float64", "object"]),
    ("x bool", lambda: _lin()(np.ones((4, 3), bool)), TypeError, ["x", "float32 or float64", "bool"]),
    ("x complex", lambda: _lin()(np.ones((4, 3), np.complex128)), TypeError, ["x", "float32 or float64",
                                                                              "complex128"]),
    ("x string", lambda: _lin()("abc"), TypeError, ["x", "float32 or float64"]),
    ("x None", lambda: _lin()(None), TypeError, ["x", "float32 or float64"]),
    ("activation x int", lambda: mc.Sigmoid()(np.ones((4, 3), np.int64)), TypeError, ["x", "int64"]),
    ("grad_output int", lambda: _fitted(_lin(), X).backward(np.ones((4, 2), np.int64)), TypeError,
     ["grad_output", "int64"]),
    ("pred int", lambda: mc.MSELoss()(np.zeros((4, 3), np.int64), P), TypeError, ["pred", "int64"]),
    ("pred float16", lambda: mc.CrossEntropyLoss()(np.zeros((4, 3), np.float16), np.zeros(4, np.int64)),
     TypeError, ["pred", "float16"]),
    ("mse target int", lambda: mc.MSELoss()(P, np.zeros((4, 3), np.int64)), TypeError, ["target", "int64"]),
    ("bce target object", lambda: mc.BCEWithLogitsLoss()(P, np.zeros((4, 3), object)), TypeError,
     ["target", "object"]),
    # ---- labels ----
    ("ce label out of range", lambda: mc.CrossEntropyLoss()(P, np.array([0, 1, 2, 3])), ValueError,
     ["target", "label 3", "index 3", "[0, 3)"]),
    ("ce label negative", lambda: mc.CrossEntropyLoss()(P, np.array([0, -1, 2, 1])), ValueError,
     ["target", "label -1", "index 1", "[0, 3)"]),
    ("ce label huge", lambda: mc.CrossEntropyLoss()(P, np.array([0, 1, 2**40, 1])), ValueError,
     ["target", "out of range"]),
    ("ce float labels", lambda: mc.CrossEntropyLoss()(P, np.array([0.0, 1.0, 2.0, 1.0])), TypeError,
     ["target", "integer class ids", "float64"]),
    ("ce bool labels", lambda: mc.CrossEntropyLoss()(P, np.array([True, False, True, False])), TypeError,
     ["target", "integer class ids", "bool"]),
    ("ce one-hot float", lambda: mc.CrossEntropyLoss()(P, np.eye(3)[[0, 1, 2, 1]]), ValueError,
     ["target", "one-hot", "argmax", "(4,3)"]),
    ("ce one-hot int", lambda: mc.CrossEntropyLoss()(P, np.eye(3, dtype=np.int64)[[0, 1, 2, 1]]), ValueError,
     ["target", "one-hot", "(4,3)"]),
    ("ce object labels", lambda: mc.CrossEntropyLoss()(P, np.array([0, 1, 2, 1], dtype=object)), TypeError,
     ["target", "integer class ids"]),
    # ---- empty batch ----
    ("x empty batch", lambda: _lin()(np.ones((0, 3), F32)), ValueError, ["x", "empty batch"]),
    ("activation empty batch", lambda: mc.GELU()(np.ones((0, 3), F32)), ValueError, ["x", "empty batch"]),
    ("loss empty batch", lambda: mc.MSELoss()(np.zeros((0, 3), F32), np.zeros((0, 3), F32)), ValueError,
     ["pred", "empty batch"]),
    ("ce empty batch", lambda: mc.CrossEntropyLoss()(np.zeros((0, 3), F32), np.zeros(0, np.int64)),
     ValueError,
     ["pred", "empty batch"]),
    # ---- NaN / Inf ----
    ("x NaN", lambda: _lin()(np.array([[1, np.nan, 1]], F32)), ValueError, ["x", "NaN or Inf",
                                                                            "set_check_finite"]),
    ("x Inf", lambda: _lin()(np.array([[1, 1, np.inf]])), ValueError, ["x", "NaN or Inf"]),
    ("x -Inf", lambda: mc.Softmax()(np.array([[1, 1, -np.inf]])), ValueError, ["x", "NaN or Inf"]),
    ("grad_output NaN", lambda: _fitted(_lin(), X).backward(np.full((4, 2), np.nan, F32)), ValueError,
     ["grad_output", "NaN or Inf"]),
    ("pred NaN", lambda: mc.CrossEntropyLoss()(np.full((4, 3), np.nan), np.zeros(4, np.int64)), ValueError,
     ["pred", "NaN or Inf"]),
    ("target Inf", lambda: mc.MSELoss()(P, np.full((4, 3), np.inf, F32)), ValueError,
     ["target", "NaN or Inf"]),
    # ---- state errors ----
    ("Linear backward before forward", lambda: _lin().backward(np.ones((4, 2), F32)), RuntimeError,
     ["Linear", "before forward"]),
    ("activation backward before forward", lambda: mc.ReLU().backward(X), RuntimeError,
     ["ReLU", "before forward"]),
    ("Sequential backward before forward",
     lambda: mc.Sequential(mc.Linear(3, 2, seed=0), mc.Tanh()).backward(np.ones((4, 2), F32)), RuntimeError,
     ["before forward"]),
    ("loss backward before call", lambda: mc.CrossEntropyLoss().backward(), RuntimeError,
     ["CrossEntropyLoss", "before"]),
    # ---- Sequential whose layers don't chain ----
    ("Sequential does not chain", lambda: mc.Sequential(mc.Linear(3, 4), mc.ReLU(), mc.Linear(5, 2)),
     ValueError,
     ["layer 2", "Linear(in_features=5", "expects 5", "layer 0", "Linear(in_features=3, out_features=4",
      "produces 4"]),
    ("Sequential adjacent layers", lambda: mc.Sequential(mc.Linear(3, 4), mc.Linear(3, 4)), ValueError,
     ["layer 1", "layer 0", "expects 3", "produces 4"]),
    ("Sequential empty", lambda: mc.Sequential(), ValueError, ["Sequential"]),
    ("Sequential non-module", lambda: mc.Sequential(mc.ReLU(), np.tanh), TypeError, ["item 1"]),
    ("Sequential mixed dtypes", lambda: mc.Sequential(mc.Linear(3, 4), mc.Linear(4, 2, dtype=np.float64)),
     TypeError, ["float32", "float64"]),
    # ---- optimizer ----
    ("SGD lr 0", lambda: mc.SGD(_lin().parameters(), lr=0.0), ValueError, ["lr", "> 0", "0.0"]),
    ("SGD lr negative", lambda: mc.SGD(_lin().parameters(), lr=-0.1), ValueError, ["lr", "> 0", "-0.1"]),
    ("SGD lr NaN", lambda: mc.SGD(_lin().parameters(), lr=float("nan")), ValueError, ["lr", "finite", "nan"]),
    ("SGD lr Inf", lambda: mc.SGD(_lin().parameters(), lr=float("inf")), ValueError, ["lr", "finite", "inf"]),
    ("SGD lr string", lambda: mc.SGD(_lin().parameters(), lr="0.1"), ValueError, ["lr", "'0.1'"]),
    ("SGD lr None", lambda: mc.SGD(_lin().parameters(), lr=None), ValueError, ["lr", "None"]),
    ("SGD momentum negative", lambda: mc.SGD(_lin().parameters(), lr=0.1, momentum=-0.5), ValueError,
     ["momentum", ">= 0", "-0.5"]),
    ("SGD weight_decay negative", lambda: mc.SGD(_lin().parameters(), lr=0.1, weight_decay=-1), ValueError,
     ["weight_decay", ">= 0"]),
    ("SGD nesterov without momentum", lambda: mc.SGD(_lin().parameters(), lr=0.1, nesterov=True), ValueError,
     ["nesterov", "momentum"]),
    ("SGD given the model", lambda: mc.SGD(_lin(), lr=0.1), TypeError, ["params", "model.parameters()"]),
    ("SGD empty params", lambda: mc.SGD([], lr=0.1), ValueError, ["params", "empty"]),
    ("SGD params of arrays", lambda: mc.SGD([np.zeros(3)], lr=0.1), TypeError, ["params[0]", "ndarray"]),
    # ---- constructors ----
    ("Linear in_features 0", lambda: mc.Linear(0, 2), ValueError, ["in_features", "positive int", "0"]),
    ("Linear out_features float", lambda: mc.Linear(3, 2.5), ValueError, ["out_features", "2.5"]),
    ("Linear dtype int", lambda: mc.Linear(3, 2, dtype=np.int32), TypeError, ["dtype", "float32 or float64",
                                                                                "int32"]),
    ("Linear dtype float16", lambda: mc.Linear(3, 2, dtype=np.float16), TypeError, ["dtype", "float16"]),
    ("Linear bad init", lambda: mc.Linear(3, 2, init="glorot"), ValueError,
     ["init", "he_uniform", "'glorot'"]),
    ("LeakyReLU slope NaN", lambda: mc.LeakyReLU(float("nan")), ValueError, ["negative_slope", "nan"]),
    ("ELU alpha Inf", lambda: mc.ELU(float("inf")), ValueError, ["alpha", "inf"]),
    ("loss reduction sum", lambda: mc.MSELoss(reduction="sum"), ValueError, ["reduction", "'sum'"]),
    # ---- threads ----
    ("set_num_threads 0", lambda: mc.set_num_threads(0), ValueError, ["n", ">= 1", "0"]),
    ("set_num_threads negative", lambda: mc.set_num_threads(-3), ValueError, ["n", ">= 1", "-3"]),
]


@pytest.mark.parametrize("call,exc,parts", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, exc, parts):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc  # not a subclass standing in for another kind
    msg = str(info.value)
    for part in parts:
        assert part in msg, f"{part!r} not in message {msg!r}"


def test_a_refused_call_leaves_the_module_usable():
    """After an error the module still works and computes the same numbers."""
    rng = np.random.default_rng(0)
    lin = mc.Linear(3, 2, dtype=np.float64, seed=0)
    x = rng.standard_normal((4, 3))
    y = lin(x)
    with pytest.raises(ValueError):
        lin(np.full((4, 3), np.nan))
    with pytest.raises(ValueError):
        lin.backward(np.ones((5, 2)))
    np.testing.assert_array_equal(lin(x), y)
    lin.zero_grad()
    lin.backward(np.ones((4, 2)))
    np.testing.assert_allclose(lin.weight.grad, np.ones((2, 4)) @ x, rtol=1e-14)


# ----- non-contiguous and Fortran-ordered inputs are copied: same result as C order ---------------------

def _layouts(a: np.ndarray):
    """The same values as Fortran-ordered, strided (every other column), negative-stride and
    transposed-view arrays."""
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    wide[:, ::2] = a
    return {
        "fortran": np.asfortranarray(a),
        "strided": wide[:, ::2],
        "reversed": np.ascontiguousarray(a[::-1])[::-1],  # negative row stride
        "transposed-view": np.ascontiguousarray(a.T).T,
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_inputs_give_the_c_order_result(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5)).astype(dtype)
    g = rng.standard_normal((6, 4)).astype(dtype)
    model = mc.Sequential(mc.Linear(5, 4, dtype=dtype, seed=0), mc.GELU())
    model.zero_grad()
    y_c = model(x)
    gx_c = model.backward(g)
    gw_c = model[0].weight.grad.copy()
    # through the network (model(x)) and module by module
    for forward, backward in ((model, model.backward), (model._forward_modules, model._backward_modules)):
        for (name, xv), gv in zip(_layouts(x).items(), _layouts(g).values()):
            assert not xv.flags.c_contiguous, name
            model.zero_grad()
            np.testing.assert_array_equal(forward(xv), y_c, err_msg=name)
            np.testing.assert_array_equal(backward(gv), gx_c, err_msg=name)
            np.testing.assert_array_equal(model[0].weight.grad, gw_c, err_msg=name)


@pytest.mark.parametrize("name", ["mse", "bce_with_logits", "cross_entropy"])
def test_non_contiguous_loss_inputs_give_the_c_order_result(name):
    rng = np.random.default_rng(2)
    pred = rng.standard_normal((6, 4))
    target = rng.integers(0, 4, 12)[::2] if name == "cross_entropy" else rng.uniform(size=(6, 4))
    loss = {"mse": mc.MSELoss, "bce_with_logits": mc.BCEWithLogitsLoss,
            "cross_entropy": mc.CrossEntropyLoss}[name]()
    value = loss(pred, np.ascontiguousarray(target))
    grad = loss.backward()
    for lname, pv in _layouts(pred).items():
        tv = target if name == "cross_entropy" else _layouts(target)[lname]
        assert loss(pv, tv) == value
        np.testing.assert_array_equal(loss.backward(), grad)


def test_python_lists_are_accepted_as_arrays():
    lin = mc.Linear(3, 2, dtype=np.float64, seed=0)
    x = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    np.testing.assert_array_equal(lin(x), lin(np.array(x)))
    loss = mc.CrossEntropyLoss()
    assert loss(np.zeros((2, 3)), [0, 2]) == pytest.approx(np.log(3.0), rel=1e-15)


# ----- finiteness checks can be switched off -------------------------------------------------------------

def test_check_finite_can_be_switched_off():
    assert mc.get_check_finite() is True
    x = np.array([[np.nan, 1.0, -np.inf, 2.0]])
    with pytest.raises(ValueError, match="NaN or Inf"):
        mc.Tanh()(x)
    mc.set_check_finite(False)  # restored by conftest's autouse fixture
    assert mc.get_check_finite() is False
    y = mc.Tanh()(x)
    assert np.isnan(y[0, 0]) and y[0, 2] == -1.0 and y[0, 1] == np.tanh(1.0)
    lin = mc.Linear(4, 2, dtype=np.float64, seed=0)
    assert np.all(np.isnan(lin(x)))  # propagated, not refused
    mc.set_check_finite(True)
    with pytest.raises(ValueError, match="NaN or Inf"):
        lin(x)
