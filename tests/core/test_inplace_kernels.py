"""CPU kernels on their in-place fast paths: the compiled network runs relu / tanh / sigmoid in
place (a == z forward, dz == da backward), the module-by-module path out of place; both must
give the same numbers. And the finiteness check on inputs catches NaN / inf anywhere."""

import mlpcore as mc
import numpy as np
import pytest


@pytest.mark.parametrize("act", [mc.ReLU, mc.Tanh, mc.Sigmoid])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_in_place_activations_match_module_path(act, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 13)).astype(dtype)  # odd sizes: vector bodies and scalar tails
    y = rng.integers(0, 5, 37)

    def make():
        return mc.Sequential(
            mc.Linear(13, 19, seed=1, dtype=dtype), act(), mc.Linear(19, 5, seed=2, dtype=dtype)
        )

    a, b = make(), make()
    np.testing.assert_array_equal(a.compiled().forward(x), b._forward_modules(x))
    opt_a = mc.SGD(a.parameters(), lr=0.1)
    opt_b = mc.SGD(b.parameters(), lr=0.1)
    a.compiled().train_step(opt_a._core, mc._core.LossKind.cross_entropy, x, y)  # in place
    loss = mc.CrossEntropyLoss()
    b.zero_grad()
    loss(b._forward_modules(x), y)
    b._backward_modules(loss.backward())  # out of place
    opt_b.step()
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.data, pb.data, rtol=tol, atol=tol)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 17, 1000, 1023])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_check_finds_every_position(bad, where, dtype):
    model = mc.Sequential(mc.Linear(32, 4, seed=0, dtype=dtype))
    net = model.compiled()
    x = np.ones((32, 32), dtype=dtype)
    x.ravel()[where] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        net.predict(x, 8)
    x.ravel()[where] = np.finfo(dtype).max  # the largest finite value passes
    net.predict(x, 8)
