"""Initialisers: statistics on a large layer, determinism, independence of seeds, and the exact
numbers of the portable RNG (splitmix64, recomputed here in pure Python), which is what makes
the weights the same on every platform.

Bounds: he_uniform U(-sqrt(6/fan_in), +), he_normal N(0, 2/fan_in), xavier_uniform
U(-sqrt(6/(fan_in+fan_out)), +), xavier_normal N(0, 2/(fan_in+fan_out)), zeros; bias starts at 0.
"""

import math

import numpy as np
import pytest

import mlpcore as mc

FAN_IN, FAN_OUT = 1000, 500  # 500,000 weights: sample std within ~0.1%, mean within ~4e-3 std
N = FAN_IN * FAN_OUT
INITS = ["he_uniform", "he_normal", "xavier_uniform", "xavier_normal"]


def _expected_std(init: str) -> float:
    fan = FAN_IN if init.startswith("he") else FAN_IN + FAN_OUT
    return math.sqrt(2.0 / fan)


@pytest.fixture(scope="module")
def layers():
    return {init: mc.Linear(FAN_IN, FAN_OUT, init=init, dtype=np.float64, seed=42)
            for init in INITS + ["zeros"]}


@pytest.mark.parametrize("init", INITS)
def test_mean_and_std(layers, init):
    w = layers[init].weight.data
    std = _expected_std(init)
    assert w.shape == (FAN_OUT, FAN_IN)
    assert abs(w.mean()) < 5 * std / math.sqrt(N), w.mean()
    assert abs(w.std() / std - 1.0) < 0.01, (w.std(), std)
    np.testing.assert_array_equal(layers[init].bias.data, 0.0)


@pytest.mark.parametrize("init", ["he_uniform", "xavier_uniform"])
def test_uniform_bounds_and_flatness(layers, init):
    w = layers[init].weight.data
    bound = math.sqrt(3.0) * _expected_std(init)  # sqrt(6 / fan)
    assert np.all(np.abs(w) <= bound)
    assert w.max() > 0.999 * bound and w.min() < -0.999 * bound
    counts, _ = np.histogram(w, bins=10, range=(-bound, bound))
    np.testing.assert_allclose(counts / N, 0.1, atol=0.005)  # binomial sd 4e-4 per bin


@pytest.mark.parametrize("init", ["he_normal", "xavier_normal"])
def test_normal_shape(layers, init):
    w = layers[init].weight.data / _expected_std(init)
    assert abs(np.mean(np.abs(w) < 1.0) - 0.682689) < 0.005
    assert abs(np.mean(np.abs(w) < 2.0) - 0.954500) < 0.003
    kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2
    assert abs(kurtosis - 3.0) < 0.05  # estimator sd ~ sqrt(24 / N) = 0.007
    assert np.max(np.abs(w)) > 4.0  # not truncated


def test_zeros(layers):
    np.testing.assert_array_equal(layers["zeros"].weight.data, 0.0)
    np.testing.assert_array_equal(layers["zeros"].bias.data, 0.0)


def test_default_init_is_he_uniform():
    a = mc.Linear(30, 20, seed=5)
    b = mc.Linear(30, 20, init="he_uniform", seed=5)
    assert a.init == "he_uniform"
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


@pytest.mark.parametrize("init", INITS)
def test_same_seed_same_numbers_different_seed_different(init):
    a = mc.Linear(200, 100, init=init, dtype=np.float64, seed=7).weight.data
    b = mc.Linear(200, 100, init=init, dtype=np.float64, seed=7).weight.data
    np.testing.assert_array_equal(a, b)
    c = mc.Linear(200, 100, init=init, dtype=np.float64, seed=8).weight.data
    assert not np.any(a == c)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("seed", [0, 1, 2, 1000])
def test_nearby_seeds_are_uncorrelated(init, seed):
    """Seeds s, s+1 and s+2 must give independent streams, also up to a shift of a few values
    (a counter seeded with the raw seed makes seed s+1 the stream of seed s shifted by one draw;
    a normal value takes two draws, so seed s+2 is then shifted by one value)."""
    a = mc.Linear(200, 100, init=init, dtype=np.float64, seed=seed).weight.data.ravel()
    for other in (seed + 1, seed + 2):
        b = mc.Linear(200, 100, init=init, dtype=np.float64, seed=other).weight.data.ravel()
        for shift in range(-3, 4):
            x, y = (a[shift:], b[:len(b) - shift]) if shift >= 0 else (a[:shift], b[-shift:])
            r = np.corrcoef(x, y)[0, 1]
            assert abs(r) < 0.05, (other, shift, r)  # sd of r ~0.007


def test_seed_none_draws_fresh_weights():
    a = mc.Linear(50, 40).weight.data
    b = mc.Linear(50, 40).weight.data
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("init", INITS)
def test_float32_weights_are_the_float64_weights_rounded(init):
    w64 = mc.Linear(64, 32, init=init, dtype=np.float64, seed=3).weight.data
    w32 = mc.Linear(64, 32, init=init, dtype=np.float32, seed=3).weight.data
    assert w32.dtype == np.float32
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


def test_init_does_not_depend_on_the_thread_count():
    mc.set_num_threads(1)
    a = mc.Linear(300, 200, init="he_normal", seed=9).weight.data.copy()
    mc.set_num_threads(2)
    b = mc.Linear(300, 200, init="he_normal", seed=9).weight.data.copy()
    np.testing.assert_array_equal(a, b)


# ----- the portable RNG, recomputed in pure Python ----------------------------------------------------

_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _reference_weights(init: str, fan_in: int, fan_out: int, seed: int) -> np.ndarray:
    """The documented algorithm: counter = splitmix64(seed); u_k = top 53 bits of
    splitmix64(counter + k) / 2^53; uniform = scale (2u - 1); normal = Box-Muller on
    (1 - u_k, u_{k+1}), cosine branch."""
    fan = fan_in if init.startswith("he") else fan_in + fan_out
    state = _splitmix64(seed)

    def u01() -> float:
        nonlocal state
        v = (_splitmix64(state) >> 11) * (1.0 / 9007199254740992.0)
        state = (state + 1) & _M64
        return v

    out = []
    for _ in range(fan_in * fan_out):
        if init.endswith("uniform"):
            out.append(math.sqrt(6.0 / fan) * (2.0 * u01() - 1.0))
        else:
            u1 = 1.0 - u01()
            u2 = u01()
            radius = math.sqrt(-2.0 * math.log(u1))
            out.append(math.sqrt(2.0 / fan) * radius * math.cos(6.283185307179586 * u2))
    return np.array(out).reshape(fan_out, fan_in)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("seed", [0, 12345, 2**64 - 1])
def test_weights_match_the_portable_rng(init, seed):
    w = mc.Linear(7, 5, init=init, dtype=np.float64, seed=seed).weight.data
    np.testing.assert_allclose(w, _reference_weights(init, 7, 5, seed), rtol=1e-14, atol=0)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        mc.Linear(3, 2, seed=seed)
