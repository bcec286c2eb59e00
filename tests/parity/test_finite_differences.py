"""Every op against float64 central finite differences, twice: with an independent
finite-difference loop written here (``helpers.numeric_grad``), and with the library's
``mlpcore.gradcheck`` — which is itself tested to catch a wrong backward.

Inputs of relu-like ops are moved away from 0 so that no perturbation crosses a kink.
"""

import numpy as np
import pytest

import mlpcore as mc
from helpers import (
    ACTIVATIONS,
    FD_TOL,
    LOSSES,
    assert_close_fd,
    away_from_kinks,
    make_target,
    mc_activation,
    mc_loss,
    numeric_grad,
)

F64 = np.float64


def _fd_check_module(module, x, where):
    """d(sum(module(x) * r))/d(x and every parameter): backward vs central differences, module by
    module (the network path equals it bit for bit: parity/test_paths.py)."""
    r = np.random.default_rng(1).standard_normal(module._forward_modules(x).shape)

    def f() -> float:
        return float(np.sum(module._forward_modules(x) * r))

    module.zero_grad()
    module._forward_modules(x)
    gx = module._backward_modules(r)
    analytic = {name: p.grad.copy() for name, p in module.named_parameters()}
    assert_close_fd(gx, numeric_grad(f, x), where + " d/dx")
    for name, p in module.named_parameters():
        view = p.data  # zero-copy: perturbing it perturbs the model
        assert_close_fd(analytic[name], numeric_grad(f, view), f"{where} d/d{name}")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_vs_finite_differences(bias):
    rng = np.random.default_rng(0)
    lin = mc.Linear(6, 4, bias=bias, dtype=F64, seed=2)
    if bias:
        lin.bias.data = rng.standard_normal(4)
    _fd_check_module(lin, rng.standard_normal((5, 6)), f"Linear(bias={bias})")


@pytest.mark.parametrize("name,param", ACTIVATIONS)
def test_activation_vs_finite_differences(name, param):
    x = away_from_kinks(2.0 * np.random.default_rng(3).standard_normal((5, 7)))
    _fd_check_module(mc_activation(name, param), x, f"{name}({param})")


@pytest.mark.parametrize("name", LOSSES)
def test_loss_vs_finite_differences(name):
    rng = np.random.default_rng(4)
    pred = 2.0 * rng.standard_normal((6, 4))
    target = make_target(name, rng, 6, 4, F64)
    loss = mc_loss(name)
    loss(pred, target)
    analytic = loss.backward()
    assert_close_fd(analytic, numeric_grad(lambda: loss(pred, target), pred), f"{name} d/dpred")


@pytest.mark.parametrize("name", LOSSES)
def test_mlp_with_loss_vs_finite_differences(name):
    """The chain rule through a whole Sequential ending in a loss."""
    rng = np.random.default_rng(5)
    model = mc.Sequential(mc.Linear(4, 6, dtype=F64, seed=1), mc.Tanh(), mc.Linear(6, 5, dtype=F64, seed=2),
                          mc.ELU(0.8), mc.Linear(5, 3, dtype=F64, seed=3))
    x = rng.standard_normal((7, 4))
    target = make_target(name, rng, 7, 3, F64)
    loss = mc_loss(name)

    def f() -> float:
        return loss(model(x), target)

    model.zero_grad()
    f()
    gx = model.backward(loss.backward())
    analytic = {n: p.grad.copy() for n, p in model.named_parameters()}
    assert_close_fd(gx, numeric_grad(f, x), f"MLP+{name} d/dx")
    for n, p in model.named_parameters():
        assert_close_fd(analytic[n], numeric_grad(f, p.data), f"MLP+{name} d/d{n}")


# ----- mlpcore.gradcheck ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,param", ACTIVATIONS)
def test_gradcheck_activation(name, param):
    x = away_from_kinks(2.0 * np.random.default_rng(6).standard_normal((4, 5)))
    report = mc.gradcheck(mc_activation(name, param), x)
    assert set(report) == {"input"}
    assert report["input"] <= FD_TOL, report


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gradcheck_linear(bias):
    x = np.random.default_rng(7).standard_normal((3, 5))
    report = mc.gradcheck(mc.Linear(5, 4, bias=bias, dtype=F64, seed=0), x)
    assert set(report) == ({"input", "weight", "bias"} if bias else {"input", "weight"})
    assert max(report.values()) <= FD_TOL, report


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_sequential_with_loss(name):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 4))
    layers = [mc.Linear(4, 6, dtype=F64, seed=0), mc.SiLU(), mc.Linear(6, 3, dtype=F64, seed=1)]
    report = mc.gradcheck(layers, x, loss=mc_loss(name), target=make_target(name, rng, 5, 3, F64))
    assert set(report) == {"input", "0.weight", "0.bias", "2.weight", "2.bias"}
    assert max(report.values()) <= FD_TOL, report


def test_gradcheck_leaves_the_parameters_and_mode_unchanged():
    model = mc.Sequential(mc.Linear(3, 4, dtype=F64, seed=0), mc.GELU(), mc.Linear(4, 2, dtype=F64, seed=1))
    before = [p.data.copy() for p in model.parameters()]
    mc.gradcheck(model, np.random.default_rng(9).standard_normal((2, 3)))
    for b, p in zip(before, model.parameters()):
        np.testing.assert_array_equal(b, p.data)
    assert model.training


class _WrongBackward(mc.Module):
    """y = x^3 with a deliberately wrong backward (3x instead of 3x^2)."""

    def forward(self, x):
        self._x = np.asarray(x, dtype=np.float64)
        return self._x ** 3

    def backward(self, grad_output):
        return grad_output * 3.0 * self._x


class _RightBackward(_WrongBackward):
    def backward(self, grad_output):
        return grad_output * 3.0 * self._x ** 2


def test_gradcheck_catches_a_wrong_backward():
    x = np.random.default_rng(10).standard_normal((3, 4)) + 2.0
    assert mc.gradcheck(_RightBackward(), x)["input"] <= FD_TOL
    assert mc.gradcheck(_WrongBackward(), x)["input"] > 0.1


def test_gradcheck_catches_a_wrong_parameter_gradient():
    """Corrupt a Linear's weight gradient after backward: gradcheck must report that parameter."""

    class Scaled(mc.Linear):
        def backward(self, grad_output):
            gx = super().backward(grad_output)
            self.weight.grad[...] *= 2.0
            return gx

    report = mc.gradcheck(Scaled(3, 2, dtype=F64, seed=0), np.random.default_rng(11).standard_normal((4, 3)))
    assert report["weight"] > 0.4 and report["bias"] <= FD_TOL and report["input"] <= FD_TOL


def test_gradcheck_refuses_float32_and_bad_x():
    with pytest.raises(ValueError, match="float64"):
        mc.gradcheck(mc.Linear(3, 2, seed=0), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="x"):
        mc.gradcheck(mc.Linear(3, 2, dtype=F64, seed=0), np.zeros(3))
