"""mc.gradcheck: float64 central differences against backward, max relative error per
parameter and for the input. It passes correct modules (built-in or custom Python), flags a
wrong backward, and refuses float32 parameters."""

import numpy as np
import pytest

import mlpcore as mc

F64 = np.float64


def x_data(rows=4, cols=5, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, cols))


class Cube(mc.Module):
    """y = x**3, forward and backward in numpy; `wrong=True` gets the derivative wrong (2x^2)."""

    _passthrough = True

    def __init__(self, wrong=False):
        self.wrong = wrong

    def forward(self, x):
        self.x = np.array(x, dtype=F64)
        return self.x ** 3

    def backward(self, grad_output):
        return (2.0 if self.wrong else 3.0) * self.x ** 2 * grad_output


class ScaledLinear(mc.Module):
    """y = 2 * linear(x): a custom module with parameters (those of its child Linear);
    `wrong=True` forgets the factor 2 in backward."""

    def __init__(self, n_in, n_out, wrong=False):
        self.linear = mc.Linear(n_in, n_out, dtype=F64, seed=3)
        self.wrong = wrong

    def forward(self, x):
        return 2.0 * self.linear.forward(x)

    def backward(self, grad_output):
        return self.linear.backward(grad_output if self.wrong else 2.0 * grad_output)


def test_report_has_input_and_every_parameter():
    model = mc.Sequential(mc.Linear(5, 7, dtype=F64, seed=0), mc.Tanh(), mc.Linear(7, 3, dtype=F64, seed=1))
    model[0].bias.data = np.linspace(-0.5, 0.5, 7)
    before = [p.data.copy() for p in model.parameters()]
    report = mc.gradcheck(model, x_data())
    assert list(report) == ["input", "0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(isinstance(v, float) for v in report.values())
    assert max(report.values()) < 1e-6, report
    for p, w in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, w)  # every perturbation was undone


@pytest.mark.parametrize("act", [mc.Sigmoid, mc.Tanh, mc.GELU, mc.SiLU, mc.Softmax, lambda: mc.ELU(0.5),
                                 lambda: mc.LeakyReLU(0.2)])
def test_builtin_activations_pass(act):
    model = mc.Sequential(mc.Linear(5, 6, dtype=F64, seed=0), act(), mc.Linear(6, 2, dtype=F64, seed=1))
    assert max(mc.gradcheck(model, x_data()).values()) < 1e-6


def test_with_a_loss_and_target():
    model = mc.Sequential(mc.Linear(5, 6, dtype=F64, seed=0), mc.SiLU(), mc.Linear(6, 3, dtype=F64, seed=1))
    x = x_data()
    for loss, target in ((mc.CrossEntropyLoss(), np.array([0, 2, 1, 2])),
                         (mc.MSELoss(), x_data(4, 3, seed=1)),
                         (mc.BCEWithLogitsLoss(), np.random.default_rng(2).uniform(0, 1, (4, 3)))):
        report = mc.gradcheck(model, x, loss=loss, target=target)
        assert max(report.values()) < 1e-6, (loss, report)


def test_sequence_of_modules_is_wrapped():
    mods = [mc.Linear(5, 4, dtype=F64, seed=0), mc.Sigmoid(), mc.Linear(4, 2, dtype=F64, seed=1)]
    report = mc.gradcheck(mods, x_data())
    assert list(report) == ["input", "0.weight", "0.bias", "2.weight", "2.bias"]
    assert max(report.values()) < 1e-6


def test_correct_custom_modules_pass():
    report = mc.gradcheck(Cube(), x_data())
    assert list(report) == ["input"] and report["input"] < 1e-6
    model = mc.Sequential(ScaledLinear(5, 4), Cube(), mc.Linear(4, 2, dtype=F64, seed=0))
    report = mc.gradcheck(model, x_data())
    assert set(report) == {"input", "0.linear.weight", "0.linear.bias", "2.weight", "2.bias"}
    assert max(report.values()) < 1e-6, report


def test_wrong_custom_backward_is_caught():
    report = mc.gradcheck(Cube(wrong=True), x_data())
    assert report["input"] == pytest.approx(1 / 3, rel=1e-3)  # |2x^2 - 3x^2| / max 3x^2 scale
    model = mc.Sequential(ScaledLinear(5, 4, wrong=True), mc.Tanh(), mc.Linear(4, 2, dtype=F64, seed=0))
    report = mc.gradcheck(model, x_data())
    assert report["0.linear.weight"] > 0.4 and report["0.linear.bias"] > 0.4 and report["input"] > 0.4
    assert report["2.weight"] < 1e-6 and report["2.bias"] < 1e-6  # only the faulty module is flagged


def test_refuses_float32():
    with pytest.raises(ValueError, match="float64"):
        mc.gradcheck(mc.Sequential(mc.Linear(5, 3), mc.Tanh()), x_data())
    with pytest.raises(ValueError, match="'0.weight'"):
        mc.gradcheck([mc.Linear(5, 3, dtype=np.float32)], x_data())


def test_refuses_non_matrix_input():
    with pytest.raises(ValueError, match="2-D"):
        mc.gradcheck(mc.Linear(5, 3, dtype=F64), np.ones(5))


def test_dropout_is_checked_in_eval_mode_and_mode_is_restored():
    model = mc.Sequential(mc.Linear(5, 6, dtype=F64, seed=0), mc.Dropout(0.5, seed=0), mc.Tanh(),
                          mc.Linear(6, 2, dtype=F64, seed=1))
    assert max(mc.gradcheck(model, x_data()).values()) < 1e-6
    assert all(m.training for m in model.modules())
    model.eval()
    mc.gradcheck(model, x_data())
    assert not any(m.training for m in model.modules())


def test_documented_as_the_check_for_custom_modules():
    assert "custom" in mc.gradcheck.__doc__
    assert "max|analytic - numeric| / max|numeric|" in mc.gradcheck.__doc__
    assert "gradcheck" in mc.Module.__doc__


# ----- gradcheck on a list of modules leaves their parameters where they are -----

def test_gradcheck_on_a_list_keeps_the_callers_optimizer_working():
    l1, act, l2 = mc.Linear(3, 4, dtype=np.float64, seed=1), mc.Tanh(), mc.Linear(4, 2, dtype=np.float64, seed=2)
    model = mc.Sequential(l1, act, l2)
    opt = mc.SGD(model.parameters(), lr=0.1)
    arena = l1.weight._arena
    x = np.random.default_rng(0).standard_normal((5, 3))
    report = mc.gradcheck([l1, act, l2], x)
    assert set(report) == {"input", "0.weight", "0.bias", "2.weight", "2.bias"}
    assert max(report.values()) < 1e-6
    assert l1.weight._arena is arena and l2.weight._arena is arena
    model.zero_grad()
    model.backward(np.ones_like(model.forward(x)))
    before = l2.bias.data.copy()
    opt.step()  # refused before the fix: the parameters had moved into gradcheck's Sequential
    np.testing.assert_allclose(l2.bias.data, before - 0.1 * 5)
    with pytest.raises(ValueError, match="same Tanh object"):
        mc.gradcheck([l1, act, mc.Linear(2, 4, dtype=np.float64), act], x)
