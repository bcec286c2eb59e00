"""The shared argument checks (mlpcore._validate) and the shared MLP builder (nn._mlp)."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import _validate as v
from mlpcore.nn import _mlp


@pytest.mark.parametrize("good", [1, 7, np.int64(3), np.uint8(2)])
def test_pos_int_accepts(good):
    assert v.pos_int("n", good) == int(good) and type(v.pos_int("n", good)) is int


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "3", None, np.float32(2)])
def test_pos_int_rejects(bad):
    with pytest.raises(ValueError, match=r"^n: expected a positive int, got "):
        v.pos_int("n", bad)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, True, "1", None, 10**400])
def test_finite_checks_reject(bad):
    """NaN / Inf / bools / non-numbers, and ints too large for a float, all raise ValueError."""
    with pytest.raises(ValueError, match=r"^x: expected a finite float, got "):
        v.finite_float("x", bad)
    with pytest.raises(ValueError, match=r"^x: expected a finite number, got "):
        v.positive("x", bad)
    with pytest.raises(ValueError, match=r"^x: expected a non-negative number, got "):
        v.nonneg("x", bad)


def test_positive_and_nonneg_bounds():
    assert v.positive("lr", np.float32(0.5)) == 0.5 and v.positive("m", 0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"^lr: expected > 0, got 0$"):
        v.positive("lr", 0)
    with pytest.raises(ValueError, match=r"^m: expected >= 0, got -1$"):
        v.positive("m", -1, allow_zero=True)
    assert v.nonneg("d", 0) == 0.0 and v.nonneg("p", np.int32(3), integer=True) == 3
    for bad in (-1, 1.5, 10**400):
        with pytest.raises(ValueError, match=r"^p: expected a non-negative int, got "):
            v.nonneg("p", bad, integer=True)
    assert v.finite_float("a", -3) == -3.0


def test_seed_or_random():
    assert v.seed_or_random(5) == 5 and v.seed_or_random(np.uint64(2**64 - 1)) == 2**64 - 1
    assert v.seed_or_random(2**64 + 3) == 3  # wraps to 64 bits
    assert v.seed_or_random(None) != v.seed_or_random(None)  # 2**-64 chance of a false failure
    for bad in (-1, True, 1.0, "0"):
        with pytest.raises(ValueError, match=r"^seed: expected a non-negative int or None, got "):
            v.seed_or_random(bad)


def test_mlp_builder_layers_inits_and_seeds():
    m = _mlp([3, 5, 4, 2], mc.Tanh, seed=10, init="he_normal", last_init="xavier_uniform")
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    expect = [mc.Linear(3, 5, init="he_normal", seed=10), mc.Linear(5, 4, init="he_normal", seed=11),
              mc.Linear(4, 2, init="xavier_uniform", seed=12)]
    for got, ref in zip([m[0], m[2], m[4]], expect):
        np.testing.assert_array_equal(got.weight.data, ref.weight.data)
    one = _mlp([3, 2], mc.ReLU, seed=4)  # a single layer: no activation, init used for it
    assert len(one) == 1
    np.testing.assert_array_equal(one[0].weight.data, mc.Linear(3, 2, seed=4).weight.data)
