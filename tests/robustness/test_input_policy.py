"""Input validation beyond test_errors.py: the compiled network's entry
points (train_step / train_epoch / evaluate / predict / forward), the documented policies
(float64 -> float32 conversion, 1-D regression targets, batch_size > n, zero columns), state
errors, and arguments of gradcheck / optimizers / modules. Every error is ValueError or
TypeError naming the argument, what was expected and what was given; RuntimeError for state.
"""

import mlpcore as mc
import numpy as np
import pytest

F32 = np.float32
CE, MSE, BCE = mc.CrossEntropyLoss.kind, mc.MSELoss.kind, mc.BCEWithLogitsLoss.kind


def _net(n_out=3, dtype=F32):
    model = mc.Sequential(
        mc.Linear(4, 5, dtype=dtype, seed=0), mc.Tanh(), mc.Linear(5, n_out, dtype=dtype, seed=1)
    )
    return model, model.compiled(), mc.SGD(model.parameters(), lr=0.1)


X = np.linspace(-1, 1, 40, dtype=F32).reshape(10, 4)
Y = np.arange(10) % 3


def _call(method, *args, n_out=3, **kw):
    model, net, opt = _net(n_out)
    if method in ("train_step", "train_epoch"):
        return getattr(net, method)(opt._core, *args, **kw)
    return getattr(net, method)(*args, **kw)


# (id, call, exception, substrings the message must contain)
CASES = [
    # ---- X and y of different lengths ----
    (
        "train_step labels shorter",
        lambda: _call("train_step", CE, X, Y[:9]),
        ValueError,
        ["y", "9 labels", "x has 10 rows"],
    ),
    (
        "train_epoch labels longer",
        lambda: _call("train_epoch", CE, X, np.r_[Y, 0], 4, True, 0),
        ValueError,
        ["y", "11 labels", "X has 10 rows"],
    ),
    (
        "evaluate labels shorter",
        lambda: _call("evaluate", CE, X, Y[:3]),
        ValueError,
        ["y", "3 labels", "X has 10 rows"],
    ),
    (
        "train_epoch mse rows",
        lambda: _call("train_epoch", MSE, X, np.zeros((7, 3), F32), 4, True, 0),
        ValueError,
        ["y", "expected 10 rows", "one per row of X", "(7,3)"],
    ),
    (
        "train_step mse 1-D rows",
        lambda: _call("train_step", MSE, X, np.zeros(9, F32), n_out=1),
        ValueError,
        ["y", "expected 10 rows", "(9,)"],
    ),
    (
        "evaluate bce rows",
        lambda: _call("evaluate", BCE, X, np.zeros((11, 3), F32)),
        ValueError,
        ["y", "expected 10 rows", "(11,3)"],
    ),
    # ---- 1-D targets are only a single-output shorthand ----
    (
        "mse 1-D target for 3 outputs",
        lambda: _call("train_step", MSE, X, np.zeros(10, F32)),
        ValueError,
        ["y", "2-D", "(10,)"],
    ),
    (
        "mse target 3-D",
        lambda: _call("train_epoch", MSE, X, np.zeros((10, 3, 1), F32), 4, True, 0),
        ValueError,
        ["y", "2-D", "(10,3,1)"],
    ),
    # ---- batch_size ----
    (
        "train_epoch batch_size 0",
        lambda: _call("train_epoch", CE, X, Y, 0, True, 0),
        ValueError,
        ["batch_size", ">= 1", "0"],
    ),
    (
        "train_epoch batch_size negative",
        lambda: _call("train_epoch", CE, X, Y, -4, False, 0),
        ValueError,
        ["batch_size", ">= 1", "-4"],
    ),
    (
        "evaluate batch_size 0",
        lambda: _call("evaluate", CE, X, Y, 0),
        ValueError,
        ["batch_size", ">= 1", "0"],
    ),
    (
        "evaluate batch_size negative",
        lambda: _call("evaluate", CE, X, Y, -1),
        ValueError,
        ["batch_size", ">= 1", "-1"],
    ),
    ("predict batch_size 0", lambda: _call("predict", X, 0), ValueError, ["batch_size", ">= 1", "0"]),
    # ---- empty data, wrong width, wrong dtype, NaN in the compiled calls ----
    (
        "train_epoch empty X",
        lambda: _call("train_epoch", CE, X[:0], Y[:0], 4, True, 0),
        ValueError,
        ["X", "empty batch"],
    ),
    ("predict empty X", lambda: _call("predict", X[:0]), ValueError, ["X", "empty batch"]),
    ("evaluate empty X", lambda: _call("evaluate", CE, X[:0], Y[:0]), ValueError, ["X", "empty batch"]),
    (
        "forward wrong width",
        lambda: _call("forward", np.zeros((2, 5), F32)),
        ValueError,
        ["x", "expected 4 columns", "(2,5)"],
    ),
    (
        "train_step X int",
        lambda: _call("train_step", CE, X.astype(int), Y),
        TypeError,
        ["x", "float32 or float64", "int64"],
    ),
    (
        "train_epoch labels float",
        lambda: _call("train_epoch", CE, X, Y.astype(F32), 4, True, 0),
        TypeError,
        ["y", "integer class ids", "float32"],
    ),
    (
        "train_epoch labels one-hot",
        lambda: _call("train_epoch", CE, X, np.eye(3)[Y], 4, True, 0),
        ValueError,
        ["y", "one-hot", "argmax"],
    ),
    (
        "train_epoch label out of range",
        lambda: _call("train_epoch", CE, X, np.r_[Y[:9], 3], 4, True, 0),
        ValueError,
        ["y", "label 3", "index 9", "[0, 3)"],
    ),
    (
        "predict X NaN",
        lambda: _call("predict", np.where(X > 0.9, np.nan, X)),
        ValueError,
        ["X", "NaN or Inf"],
    ),
    (
        "train_epoch y Inf",
        lambda: _call("train_epoch", MSE, X, np.full((10, 3), np.inf, F32), 4, True, 0),
        ValueError,
        ["y", "NaN or Inf"],
    ),
    (
        "float64 beyond float32 range",
        lambda: _call("predict", np.full((2, 4), 1e300)),
        ValueError,
        ["X", "NaN or Inf after conversion to float32"],
    ),
    # ---- zero columns (a softmax over an empty row would read past it) ----
    (
        "softmax zero columns",
        lambda: mc.Softmax()(np.zeros((3, 0))),
        ValueError,
        ["x", "at least 1 column", "(3,0)"],
    ),
    (
        "dropout zero columns",
        lambda: mc.Dropout(0.5)(np.zeros((3, 0), F32)),
        ValueError,
        ["x", "at least 1 column"],
    ),
    # ---- wrong device ----
    (
        "to unknown device",
        lambda: mc.Linear(3, 2).to("tpu"),
        ValueError,
        ["device", "'cpu' or 'cuda'", "'tpu'"],
    ),
    ("to non-string device", lambda: mc.Linear(3, 2).to(0), ValueError, ["device", "'cpu' or 'cuda'", "0"]),
    # ---- state errors ----
    (
        "Maxout backward before forward",
        lambda: mc.Maxout(3, 2).backward(np.ones((2, 2), F32)),
        RuntimeError,
        ["Maxout", "before forward"],
    ),
    (
        "Dropout backward before forward",
        lambda: mc.Dropout(0.5).backward(np.ones((2, 2), F32)),
        RuntimeError,
        ["Dropout", "before forward"],
    ),
    (
        "Residual backward before forward",
        lambda: mc.Residual(mc.Linear(3, 3)).backward(np.ones((2, 3), F32)),
        RuntimeError,
        ["before forward"],
    ),
    # ---- a Parameter replaced instead of written ----
    (
        "replace weight by array",
        lambda: setattr(mc.Linear(3, 2), "weight", np.zeros((2, 3))),
        TypeError,
        ["Linear.weight", "cannot be replaced", "shape (2, 3)", "ndarray", ".weight.data = a"],
    ),
    (
        "replace bias by wrong-shape array",
        lambda: setattr(mc.Linear(3, 2), "bias", np.zeros(5)),
        TypeError,
        ["Linear.bias", "shape (2,)", "ndarray of shape (5,)"],
    ),
    (
        "replace weight by other Parameter",
        lambda: setattr(mc.Linear(3, 2), "weight", mc.Linear(4, 4).weight),
        TypeError,
        ["Linear.weight", "Parameter"],
    ),
    (
        "replace Maxout weight",
        lambda: setattr(mc.Maxout(3, 2), "weight", None),
        TypeError,
        ["Maxout.weight", "NoneType"],
    ),
    (
        "write weight.data wrong shape",
        lambda: setattr(mc.Linear(3, 2).weight, "data", np.zeros((3, 2))),
        ValueError,
        ["Parameter.data", "expected shape (2, 3)", "(3, 2)"],
    ),
    (
        "write bias.data beyond float32",
        lambda: setattr(mc.Linear(3, 2).bias, "data", np.array([1e300, 0.0])),
        ValueError,
        ["Parameter.data", "NaN or Inf after conversion to float32"],
    ),
    (
        "write weight.data complex",
        lambda: setattr(mc.Linear(3, 2).weight, "data", np.zeros((2, 3), complex)),
        TypeError,
        ["Parameter.data", "complex128"],
    ),
    # ---- module arguments ----
    (
        "LeakyReLU slope string",
        lambda: mc.LeakyReLU("0.1"),
        ValueError,
        ["negative_slope", "finite float", "'0.1'"],
    ),
    ("ELU alpha None", lambda: mc.ELU(None), ValueError, ["alpha", "finite float", "None"]),
    ("Dropout p 1", lambda: mc.Dropout(1.0), ValueError, ["p", "[0, 1)", "1.0"]),
    ("Maxout pieces 0", lambda: mc.Maxout(3, 2, pieces=0), ValueError, ["pieces", "positive int", "0"]),
    ("Linear seed negative", lambda: mc.Linear(3, 2, seed=-1), ValueError, ["seed", "non-negative", "-1"]),
    ("Residual of a non-module", lambda: mc.Residual(np.tanh), TypeError, ["block", "Module", "ufunc"]),
    ("Residual changes width", lambda: mc.Residual(mc.Linear(3, 4)), ValueError, ["Residual", "3", "4"]),
    (
        "Sequential nested does not chain",
        lambda: mc.Sequential(mc.Sequential(mc.Linear(3, 4), mc.ReLU()), mc.Linear(5, 2)),
        ValueError,
        ["layer 1", "Linear(in_features=5", "expects 5", "layer 0", "produces 4"],
    ),
    (
        "Sequential Maxout does not chain",
        lambda: mc.Sequential(mc.Linear(3, 4), mc.Maxout(5, 2)),
        ValueError,
        ["layer 1", "Maxout(in_features=5", "layer 0", "Linear(in_features=3, out_features=4"],
    ),
    # ---- gradcheck arguments ----
    (
        "gradcheck complex x",
        lambda: mc.gradcheck(mc.Linear(3, 2, dtype=np.float64), np.ones((2, 3), complex)),
        TypeError,
        ["x", "real numeric", "complex128"],
    ),
    (
        "gradcheck string x",
        lambda: mc.gradcheck(mc.Linear(3, 2, dtype=np.float64), "abc"),
        TypeError,
        ["x", "real numeric"],
    ),
    (
        "gradcheck 1-D x",
        lambda: mc.gradcheck(mc.Linear(3, 2, dtype=np.float64), np.ones(3)),
        ValueError,
        ["x", "2-D", "(3,)"],
    ),
    (
        "gradcheck eps 0",
        lambda: mc.gradcheck(mc.Linear(3, 2, dtype=np.float64), np.ones((2, 3)), eps=0),
        ValueError,
        ["eps", "(0, 1)", "0"],
    ),
    (
        "gradcheck not a module",
        lambda: mc.gradcheck(5, np.ones((2, 3))),
        TypeError,
        ["module", "Module", "int"],
    ),
    (
        "gradcheck float32 module",
        lambda: mc.gradcheck(mc.Linear(3, 2), np.ones((2, 3))),
        ValueError,
        ["weight", "float32", "float64"],
    ),
    # ---- optimizer state ----
    (
        "load_state_dict None",
        lambda: mc.SGD(mc.Linear(3, 2).parameters(), lr=0.1).load_state_dict(None),
        TypeError,
        ["state_dict", "dict", "NoneType"],
    ),
    (
        "load_state_dict bad lr",
        lambda: mc.SGD(mc.Linear(3, 2).parameters(), lr=0.1).load_state_dict(
            {"type": "SGD", "hyper": {"lr": -1.0}, "step": 0, "state": np.zeros(8)}
        ),
        ValueError,
        ["lr", "> 0", "-1.0"],
    ),
    (
        "load_state_dict unknown key",
        lambda: mc.SGD(mc.Linear(3, 2).parameters(), lr=0.1).load_state_dict(
            {"type": "SGD", "hyper": {"lrate": 1.0}, "step": 0, "state": np.zeros(8)}
        ),
        ValueError,
        ["'lrate'"],
    ),
    (
        "load_state_dict other optimizer",
        lambda: mc.SGD(mc.Linear(3, 2).parameters(), lr=0.1).load_state_dict(
            mc.Adam(mc.Linear(3, 2).parameters()).state_dict()
        ),
        ValueError,
        ["'Adam'", "SGD"],
    ),
    (
        "optimizer lr set to NaN",
        lambda: setattr(mc.SGD(mc.Linear(3, 2).parameters(), lr=0.1), "lr", float("nan")),
        ValueError,
        ["lr", "finite", "nan"],
    ),
    (
        "Adam beta 1",
        lambda: mc.Adam(mc.Linear(3, 2).parameters(), betas=(0.9, 1.0)),
        ValueError,
        ["betas[1]", "[0, 1)", "1.0"],
    ),
    ("Adam eps 0", lambda: mc.Adam(mc.Linear(3, 2).parameters(), eps=0.0), ValueError, ["eps", "> 0"]),
]


@pytest.mark.parametrize("call,exc,parts", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, exc, parts):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc
    msg = str(info.value)
    for part in parts:
        assert part in msg, f"{part!r} not in message {msg!r}"


# ----- documented policies --------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_kind", [MSE, BCE], ids=["mse", "bce"])
def test_1d_target_for_a_single_output_network_is_a_column(loss_kind):
    """(B,) targets are (B, 1) for a one-output network, in every compiled call (as MSELoss)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 4)).astype(F32)
    y = rng.uniform(0, 1, 12).astype(F32)
    results = []
    for target in (y, y[:, None]):
        model, net, opt = _net(n_out=1)
        step = net.train_step(opt._core, loss_kind, x, target)
        epoch = net.train_epoch(opt._core, loss_kind, x, target, 5, True, 3)
        ev = net.evaluate(loss_kind, x, target, 4)
        results.append((step, epoch, ev, model[2].weight.data.copy()))
    (s1, e1, v1, w1), (s2, e2, v2, w2) = results
    assert (s1, e1, v1) == (s2, e2, v2)
    np.testing.assert_array_equal(w1, w2)


def test_float64_input_to_a_float32_model_is_converted():
    """Same result as converting first (numpy's rounding); non-contiguous inputs are copied."""
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((9, 4))
    model, net, opt = _net()
    want = net.predict(x64.astype(F32))
    np.testing.assert_array_equal(net.predict(x64), want)
    np.testing.assert_array_equal(net.predict(np.asfortranarray(x64)), want)
    np.testing.assert_array_equal(net.predict(np.repeat(x64, 2, axis=1)[:, ::2]), want)
    np.testing.assert_array_equal(net.forward(x64[::-1][::-1]), want)
    np.testing.assert_array_equal(model(x64), want)
    big_endian = x64.astype(">f8")
    np.testing.assert_array_equal(net.predict(big_endian), want)
    # the same for float32 input to a float64 model (exact)
    model64, net64, _ = _net(dtype=np.float64)
    np.testing.assert_array_equal(
        net64.predict(x64.astype(F32)), net64.predict(x64.astype(F32).astype(np.float64))
    )


def test_float64_to_float32_conversion_rounds_like_numpy():
    """The C++ conversion rounds to nearest like numpy's cast, including the largest float32, the
    rounding boundary just above it and subnormals; beyond float32's range it gives inf (refused
    unless checks are off, and without numpy's overflow warning)."""
    f32max = float(np.finfo(F32).max)
    boundary = 3.4028235677973366e38  # FLT_MAX + half an ulp: rounds (ties-to-even) to inf
    finite = np.array(
        [
            [
                0.1,
                -1 / 3,
                1e-40,
                -1e-45,
                2.0**-149,
                2.0**-150 * 1.5,
                f32max,
                -f32max,
                3.4028235e38,
                np.nextafter(boundary, 0),
                1e-310,
                123456789.123,
                0.0,
                -0.0,
            ]
        ]
    )
    got = mc._core._as_matrix(finite, "x", F32)
    assert got.dtype == F32
    np.testing.assert_array_equal(got, finite.astype(F32))
    assert np.signbit(got[0, -1]) and not np.signbit(got[0, -2])
    wide = np.array([[boundary, -boundary, 1e39, -1e300, np.inf, np.nan]])
    with pytest.raises(ValueError, match="NaN or Inf after conversion to float32"):
        mc._core._as_matrix(wide[:, :1], "x", F32)
    mc.set_check_finite(False)
    got = mc._core._as_matrix(wide, "x", F32)  # no RuntimeWarning (warnings are errors in the suite)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, wide.astype(F32))


def test_batch_size_larger_than_n_is_one_full_batch():
    """Documented policy: batch_size > n trains on one batch of all n rows."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 4)).astype(F32)
    y = rng.integers(0, 3, 7)
    a, net_a, opt_a = _net()
    b, net_b, opt_b = _net()
    la = net_a.train_epoch(opt_a._core, CE, x, y, 1000, False, 0)
    lb = net_b.train_epoch(opt_b._core, CE, x, y, 7, False, 0)
    assert la == lb
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert net_a.evaluate(CE, x, y, 10**9) == net_a.evaluate(CE, x, y, 7)
    np.testing.assert_array_equal(net_a.predict(x, 10**9), net_a.predict(x, 7))
    # another batching may round differently (a one-row batch goes through GEMV, not GEMM)
    np.testing.assert_allclose(net_a.predict(x, 10**9), net_a.predict(x, 3), rtol=1e-6, atol=1e-6)


def test_a_refused_compiled_call_changes_nothing():
    """Validation happens before any work: the weights and the workspace stay as they were."""
    model, net, opt = _net()
    before = [p.data.copy() for p in model.parameters()]
    bad = [
        lambda: net.train_epoch(opt._core, CE, X, np.r_[Y[:9], 7], 4, True, 0),
        lambda: net.train_epoch(opt._core, CE, X, Y, 0, True, 0),
        lambda: net.train_step(opt._core, CE, np.where(X > 0.5, np.inf, X), Y),
        lambda: net.train_step(opt._core, MSE, X, np.zeros((10, 2), F32)),
    ]
    for call in bad:
        with pytest.raises(ValueError):
            call()
    for p, w in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, w)
    assert opt.step_count == 0
    assert net.capacity == 0  # nothing ran


def test_assigning_the_same_parameter_and_new_attributes_is_allowed():
    lin = mc.Linear(3, 2, seed=0)
    lin.weight = lin.weight  # a no-op, allowed
    lin.note = "anything"  # ordinary attributes are free
    lin.weight.data = np.ones((2, 3))
    lin.weight.data[...] = 2.0
    assert np.all(lin.weight.data == 2.0)
    tied = mc.TiedLinear(lin)
    assert tied.weight is lin.weight


def test_dropout_eval_backward_checks_the_shape():
    d = mc.Dropout(0.5, seed=0).eval()
    x = np.ones((4, 3), F32)
    d(x)
    g = np.arange(12, dtype=F32).reshape(4, 3)
    out = d.backward(g)
    np.testing.assert_array_equal(out, g)
    assert out is not g
    with pytest.raises(ValueError, match=r"grad_output: expected 4 rows"):
        d.backward(np.ones((5, 3), F32))
    with pytest.raises(ValueError, match=r"grad_output: expected 3 columns"):
        d.backward(np.ones((4, 2), F32))


def test_activation_of_big_endian_float64_computes_in_float64():
    x = np.array([[0.5, -2.0]], dtype=">f8")
    y = mc.Tanh()(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, np.tanh(x.astype(np.float64)))


@pytest.mark.parametrize("compiled", [None, False])
@pytest.mark.parametrize("label", [2**40, 2**63 + 1], ids=["int64", "uint64"])
def test_trainer_refuses_huge_labels_instead_of_wrapping_them(compiled, label):
    """Module by module the Trainer converts labels to int32; 2**40 used to wrap to 0 silently."""
    model = mc.Sequential(mc.Linear(2, 3, seed=0))
    tr = mc.Trainer(model, compiled=compiled)
    y = np.array([0, 1, 2, label], dtype=np.uint64 if label > 2**62 else np.int64)
    with pytest.raises(ValueError, match="out of range"):
        tr.fit(np.ones((4, 2), F32), y, epochs=1, verbose=0)


def test_the_issue_example_of_layers_that_do_not_chain():
    with pytest.raises(ValueError) as info:
        mc.Sequential(mc.Linear(784, 256), mc.ReLU(), mc.Linear(128, 10))
    msg = str(info.value)
    assert "layer 2 (Linear(in_features=128, out_features=10, bias=True)) expects 128 input features" in msg
    assert "layer 0 (Linear(in_features=784, out_features=256, bias=True)) produces 256" in msg
