"""A whole training step — forward, loss, backward, SGD with momentum — for every activation and
every loss, against a PyTorch twin built with copied weights, over 10 steps (a new mini-batch
each step). After each step the loss value and every weight and bias are compared.

Both execution paths are checked: module by module from Python (``model(x)``,
``loss.backward()``, ``model.backward(g)``, ``opt.step()``) and the compiled C++ network
(``model.compiled().train_step``), which DESIGN.md requires to give the same numbers.
"""

import numpy as np
import pytest

import mlpcore as mc
from helpers import (
    ACTIVATIONS_ONE_EACH,
    DTYPES,
    LOSSES,
    assert_close_torch,
    import_torch,
    make_target,
    mc_activation,
    mc_loss,
    torch_activation,
    torch_loss,
    torch_target,
)

torch = import_torch()

WIDTHS = [5, 16, 12, 3]  # in, hidden, hidden, out
BATCH = 8
STEPS = 10
_LOSS_KIND = {"mse": mc._core.LossKind.mse, "cross_entropy": mc._core.LossKind.cross_entropy,
              "bce_with_logits": mc._core.LossKind.bce_with_logits}


def _build(act, param, dtype):
    layers = []
    for i in range(len(WIDTHS) - 1):
        layers.append(mc.Linear(WIDTHS[i], WIDTHS[i + 1], dtype=dtype, seed=10 + i))
        if i < len(WIDTHS) - 2:
            layers.append(mc_activation(act, param))
    return mc.Sequential(*layers)


class _TorchTwin(torch.nn.Module):
    def __init__(self, model, act, param):
        super().__init__()
        self.linears = torch.nn.ModuleList()
        for m in model:
            if isinstance(m, mc.Linear):
                dt = torch.from_numpy(m.weight.data).dtype
                lin = torch.nn.Linear(m.in_features, m.out_features, dtype=dt)
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(m.weight.data.copy()))
                    lin.bias.copy_(torch.from_numpy(m.bias.data.copy()))
                self.linears.append(lin)
        self.act = torch_activation(act, param)

    def forward(self, x):
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < len(self.linears) - 1:
                x = self.act(x)
        return x


def _batches(loss_name, dtype):
    rng = np.random.default_rng(123)
    for _ in range(STEPS):
        x = rng.standard_normal((BATCH, WIDTHS[0])).astype(dtype)
        yield x, make_target(loss_name, rng, BATCH, WIDTHS[-1], dtype)


def _compare(model, twin, value, value_t, dtype, where):
    # the op tolerances (1e-10 / 1e-5) hold over all 10 steps: measured <= 2e-15 / 1e-6
    assert_close_torch(np.array(value), value_t, dtype, where + " loss")
    linears = [m for m in model if isinstance(m, mc.Linear)]
    for k, (m, t) in enumerate(zip(linears, twin.linears)):
        assert_close_torch(m.weight.data, t.weight, dtype, f"{where} layer {k} weight")
        assert_close_torch(m.bias.data, t.bias, dtype, f"{where} layer {k} bias")


def _run(act, param, loss_name, dtype, compiled, lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0):
    model = _build(act, param, dtype)
    twin = _TorchTwin(model, act, param)
    loss, loss_t = mc_loss(loss_name), torch_loss(loss_name)
    opt = mc.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    opt_t = torch.optim.SGD(twin.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                            weight_decay=weight_decay)
    net = model.compiled() if compiled else None
    if compiled:
        assert net is not None
    path = "compiled" if compiled else "modules"
    for step, (x, target) in enumerate(_batches(loss_name, dtype)):
        if compiled:
            value = net.train_step(opt._core, _LOSS_KIND[loss_name], x, target)
        else:
            model.zero_grad()
            value = loss(model._forward_modules(x), target)
            model._backward_modules(loss.backward())
            opt.step()
        opt_t.zero_grad()
        value_t = loss_t(twin(torch.from_numpy(x)), torch_target(loss_name, target))
        value_t.backward()
        opt_t.step()
        _compare(model, twin, value, value_t, dtype, f"{path} {act}({param})+{loss_name} step {step}")
    return model


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("act,param", ACTIVATIONS_ONE_EACH)
def test_whole_step_vs_torch(act, param, loss_name, dtype):
    _run(act, param, loss_name, dtype, compiled=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("act,param", ACTIVATIONS_ONE_EACH)
def test_whole_step_compiled_vs_torch(act, param, loss_name, dtype):
    _run(act, param, loss_name, dtype, compiled=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("compiled", [False, True], ids=["modules", "compiled"])
@pytest.mark.parametrize("nesterov,weight_decay,momentum",
                         [(True, 0.0, 0.9), (False, 1e-2, 0.9), (True, 1e-2, 0.5), (False, 1e-2, 0.0)])
def test_sgd_variants_vs_torch(nesterov, weight_decay, momentum, compiled, dtype):
    _run("tanh", 0.0, "cross_entropy", dtype, compiled, lr=0.03, momentum=momentum, nesterov=nesterov,
         weight_decay=weight_decay)


@pytest.mark.parametrize("loss_name", LOSSES)
def test_both_paths_give_the_same_numbers(loss_name):
    """The module-by-module path and the compiled network agree to rounding (float64)."""
    a = _run("gelu", 0.0, loss_name, np.float64, compiled=False)
    b = _run("gelu", 0.0, loss_name, np.float64, compiled=True)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)
