"""A module object used twice in one model is refused (its saved inputs would be overwritten);
shared Parameters (TiedLinear) stay allowed."""

import numpy as np
import pytest

import mlpcore as mc


def _x(n=6, f=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(np.float32)


def test_module_used_twice_in_sequential_is_refused():
    act = mc.Tanh()
    with pytest.raises(ValueError, match=r"same Tanh object is at position 1 and at position 3.*create a new one"):
        mc.Sequential(mc.Linear(4, 4, seed=1), act, mc.Linear(4, 4, seed=2), act, mc.Linear(4, 2, seed=3))
    # also when the second use is nested in a sub-module
    with pytest.raises(ValueError, match=r"same Tanh object is at position 1 and at position 2\.block\.1"):
        mc.Sequential(mc.Linear(4, 4, seed=1), act, mc.Residual(mc.Sequential(mc.Linear(4, 4, seed=2), act)))


def test_module_used_twice_in_residual_block_is_refused():
    class Twice(mc.Module):  # a custom block that applies one module object twice
        def __init__(self, m):
            self.first, self.second = m, m

        def forward(self, x):
            return self.second.forward(self.first.forward(x))

    with pytest.raises(ValueError, match=r"Residual: the same ReLU object is at position block.first and at position block.second"):
        mc.Residual(Twice(mc.ReLU()))


def test_shared_parameters_stay_allowed():
    enc = mc.Linear(4, 3, seed=1)
    model = mc.Sequential(enc, mc.Tanh(), mc.TiedLinear(enc, transpose=True), mc.Tanh())
    x = _x()
    out = model.forward(x)
    model.backward(np.ones_like(out))
    assert out.shape == (6, 4)
