"""Bad loss parameters and weight vectors: ValueError / TypeError naming the argument, raised when
the loss is made (scalar parameters, as PyTorch refuses them) or, for a vector whose length must
match the outputs, at the first call on either path — never a crash, never a silent mismatch."""

import mlpcore as mc
import numpy as np
import pytest

_K = mc._core.LossKind


@pytest.mark.parametrize("delta", [0.0, -1.0, float("nan")])
def test_huber_delta_must_be_positive(delta):
    with pytest.raises(ValueError, match="delta: expected a value > 0"):
        mc.HuberLoss(delta=delta)


@pytest.mark.parametrize("beta", [-0.1, -5.0, float("nan")])
def test_smooth_l1_beta_must_not_be_negative(beta):
    with pytest.raises(ValueError, match="beta: expected a value >= 0"):
        mc.SmoothL1Loss(beta=beta)


def test_smooth_l1_with_beta_zero_is_l1():
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    a, b = mc.SmoothL1Loss(beta=0.0), mc.L1Loss()
    assert a(p, t) == b(p, t)
    np.testing.assert_array_equal(a.backward(), b.backward())


@pytest.mark.parametrize("ls", [-0.1, 1.0000001, 2.0, float("nan")])
def test_label_smoothing_outside_0_1_is_refused(ls):
    """PyTorch raises above 1 and ignores a negative value; both are refused here."""
    with pytest.raises(ValueError, match="label_smoothing: expected a value in \\[0, 1\\]"):
        mc.CrossEntropyLoss(label_smoothing=ls)


def test_label_smoothing_bounds_are_allowed():
    for ls in (0.0, 1.0):
        assert mc.CrossEntropyLoss(label_smoothing=ls).label_smoothing == ls


@pytest.mark.parametrize("kw", [{"delta": "1"}, {"delta": None}])
def test_parameters_of_the_wrong_type(kw):
    with pytest.raises(TypeError):
        mc.HuberLoss(**kw)


def test_reduction_other_than_mean_is_refused():
    for make in (lambda: mc.MSELoss("sum"), lambda: mc.HuberLoss(reduction="none"),
                 lambda: mc.CrossEntropyLoss(reduction="sum"), lambda: mc.PoissonNLLLoss(reduction="sum")):
        with pytest.raises(ValueError, match="reduction: only 'mean'"):
            make()


@pytest.mark.parametrize("make,name", [(lambda v: mc.CrossEntropyLoss(weight=v), "weight"),
                                       (lambda v: mc.BCEWithLogitsLoss(pos_weight=v), "pos_weight")])
def test_weight_vectors_are_validated(make, name):
    with pytest.raises(ValueError, match=f"{name}: contains NaN or Inf"):
        make([1.0, np.inf])
    with pytest.raises(ValueError, match=f"{name}: expected a 1-D array"):
        make(np.ones((2, 2)))
    with pytest.raises(ValueError, match=f"{name}: expected one value per output, got none"):
        make([])
    with pytest.raises(TypeError, match=name):
        make(["a", "b"])
    with pytest.raises(TypeError, match=name):
        make(np.ones(2, dtype=np.complex128))
    loss = make(np.array([1, 2, 3]))  # ints are fine: float64 copies, not views
    assert getattr(loss, name).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_class_weight_of_the_wrong_length_names_weight_on_both_paths(dtype):
    loss = mc.CrossEntropyLoss(weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"weight: expected one value per output \(3\), got 2 values"):
        loss(np.zeros((4, 3), dtype=dtype), np.array([0, 1, 2, 0]))
    model = mc.Sequential(mc.Linear(2, 3, dtype=dtype, seed=0))
    tr = mc.Trainer(model, loss=loss, optimizer=mc.SGD(model.parameters(), lr=0.1))
    before = model[0].weight.data.copy()
    X, y = np.zeros((4, 2), dtype=dtype), np.array([0, 1, 2, 0])
    for call in (lambda: tr.fit(X, y, epochs=1, verbose=0), lambda: tr.train_on_batch(X, y),
                 lambda: tr.evaluate(X, y)):
        with pytest.raises(ValueError, match=r"weight: expected one value per output \(3\)"):
            call()
    np.testing.assert_array_equal(model[0].weight.data, before)


def test_pos_weight_of_the_wrong_length_names_pos_weight():
    loss = mc.BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"pos_weight: expected one value per output \(2\), got 3 values"):
        loss(np.zeros((4, 2)), np.zeros((4, 2)))
    net = mc.Sequential(mc.Linear(2, 2, dtype=np.float64, seed=0))
    opt = mc.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="pos_weight"):
        net.compiled().train_epoch(opt._core, loss.spec, np.zeros((4, 2)), np.zeros((4, 2)), 2, True, 0)


def test_losses_refuse_vectors_of_other_losses():
    with pytest.raises(ValueError, match="weight: only cross_entropy takes class weights"):
        mc._core.LossSpec(_K.mse, weight=[1.0])
    with pytest.raises(ValueError, match="pos_weight: only bce_with_logits"):
        mc._core.LossSpec(_K.cross_entropy, pos_weight=[1.0])


@pytest.mark.parametrize("w,exc,match", [
    (np.ones(3), ValueError, "sample_weight: has 3 weights but the prediction has 4 rows"),
    (np.ones((4, 1)), ValueError, "sample_weight: expected a 1-D array of 4 weights"),
    (np.array([1.0, np.nan, 1.0, 1.0]), ValueError, "sample_weight: contains NaN or Inf"),
    (np.array([1.0, np.inf, 1.0, 1.0], dtype=np.float32), ValueError, "sample_weight: contains NaN or Inf"),
    (np.ones(4, dtype=np.complex64), TypeError, "sample_weight: expected float, int or bool values"),
    (np.ones(4, dtype=np.float16), TypeError, "sample_weight: expected float, int or bool values"),
    (np.array(["1", "2", "3", "4"]), TypeError, "sample_weight"),
    (np.array([1.0, "x", None, 2], dtype=object), TypeError, "sample_weight"),
    ("abcd", TypeError, "sample_weight"),
])
def test_bad_sample_weights_name_the_argument(w, exc, match):
    with pytest.raises(exc, match=match):
        mc.MSELoss()(np.zeros((4, 2)), np.zeros((4, 2)), w)


def test_nan_weights_pass_when_finiteness_checks_are_off():
    """As every other input: set_check_finite(False) skips the scan (and the NaN propagates)."""
    mc.set_check_finite(False)
    value = mc.MSELoss()(np.ones((2, 1)), np.zeros((2, 1)), np.array([1.0, np.nan]))
    assert np.isnan(value)


def test_loss_kind_and_loss_spec_are_interchangeable_in_the_core():
    rng = np.random.default_rng(1)
    p, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    a = mc._core.loss_forward_backward(_K.cross_entropy, p, y, np.float64)
    b = mc._core.loss_forward_backward(mc._core.LossSpec(_K.cross_entropy), p, y, np.float64)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    spec = mc._core.LossSpec(_K.poisson_nll, log_input=False, full=True, eps=0.5)
    assert (spec.kind, spec.log_input, spec.full, spec.eps) == (_K.poisson_nll, False, True, 0.5)
    assert spec.weight is None and spec.pos_weight is None
