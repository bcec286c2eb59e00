"""LayerNorm and BatchNorm1d against PyTorch autograd and float64 central differences.

Each case runs the layer inside a Sequential both ways — module by module (``_forward_modules`` /
``_backward_modules``, the generic op bindings) and compiled (``model(x)`` / ``model.backward``
through the C++ network) — and compares the output, d/dx and every parameter gradient with a
torch twin (float64 <= 1e-10, float32 <= 1e-5 relative). BatchNorm's running statistics are
compared after several training steps, then eval mode; also momentum=None, affine=False,
track_running_stats=False and frozen parameters.
"""

import helpers
import mlpcore as mc
import numpy as np
import pytest
from helpers import assert_close_fd, assert_close_torch, numeric_grad

torch = helpers.import_torch()

C = 6
PATHS = ["modules", "compiled"]


def _forward(model, x, path):
    return model._forward_modules(x) if path == "modules" else model(x)


def _backward(model, g, path):
    return model._backward_modules(g) if path == "modules" else model.backward(g)


def _torch_twin(model):
    t = model.to_torch()
    t.train(model.training)
    return t


def _compare_step(model, tmodel, x, dy, dtype, where, path):
    """One forward + backward on both; compare output, d/dx and parameter gradients."""
    model.zero_grad()
    tmodel.zero_grad()
    out = _forward(model, x, path)
    tx = torch.tensor(x, requires_grad=True)
    tout = tmodel(tx)
    assert_close_torch(out, tout, dtype, f"{where} {path} y")
    dx = _backward(model, dy, path)
    tout.backward(torch.tensor(dy))
    assert_close_torch(dx, tx.grad, dtype, f"{where} {path} d/dx")
    for (name, p), (tname, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
        assert name == tname
        if tp.grad is not None:
            assert_close_torch(p.grad, tp.grad, dtype, f"{where} {path} d/d{name}")


def _data(dtype, rows=9, seed=0, cols=C):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, cols)) * 2 + 0.5).astype(dtype), rng.standard_normal((rows, cols)).astype(dtype)


def _randomize(model, seed=1):
    """Non-trivial weights and biases (the layers start at weight 1, bias 0)."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = rng.uniform(0.5, 1.5, p.shape) if p.shape[0] == C else rng.standard_normal(p.shape) * 0.5
    return model


@pytest.mark.parametrize("dtype", helpers.DTYPES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kw", [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 0.1}])
def test_layer_norm_matches_torch(dtype, path, kw):
    model = _randomize(mc.Sequential(mc.Linear(4, C, dtype=dtype, seed=3), mc.LayerNorm(C, dtype=dtype, **kw),
                                     mc.Tanh()))
    tmodel = _torch_twin(model)
    x, _ = _data(dtype, cols=4)
    dy = np.random.default_rng(7).standard_normal((x.shape[0], C)).astype(dtype)
    _compare_step(model, tmodel, x, dy, dtype, f"LayerNorm{kw}", path)


@pytest.mark.parametrize("dtype", helpers.DTYPES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kw", [{}, {"momentum": None}, {"momentum": 0.5, "eps": 1e-3}, {"affine": False},
                                {"track_running_stats": False}, {"affine": False, "track_running_stats": False}])
def test_batch_norm_matches_torch_in_train_and_eval_mode(dtype, path, kw):
    # no bias before BatchNorm: the batch mean removes it, its gradient is 0 up to rounding
    model = _randomize(mc.Sequential(mc.Linear(4, C, bias=False, dtype=dtype, seed=3),
                                     mc.BatchNorm1d(C, dtype=dtype, **kw), mc.ReLU(), mc.Linear(C, 3, dtype=dtype, seed=4)))
    tmodel = _torch_twin(model)
    bn, tbn = model[1], tmodel[1]
    for step in range(4):  # the running statistics follow PyTorch's over several batches
        x, _ = _data(dtype, rows=7 + step, seed=step, cols=4)
        dy = np.random.default_rng(10 + step).standard_normal((x.shape[0], 3)).astype(dtype)
        _compare_step(model, tmodel, x, dy, dtype, f"BatchNorm1d{kw} step {step}", path)
    if bn.track_running_stats:
        assert_close_torch(bn.running_mean, tbn.running_mean, dtype, f"BatchNorm1d{kw} {path} running_mean")
        assert_close_torch(bn.running_var, tbn.running_var, dtype, f"BatchNorm1d{kw} {path} running_var")
        assert int(bn.num_batches_tracked) == int(tbn.num_batches_tracked) == 4
    else:
        assert bn.running_mean is None and tbn.running_mean is None
    model.eval()
    tmodel.eval()
    x, _ = _data(dtype, rows=5, seed=9, cols=4)
    dy = np.random.default_rng(11).standard_normal((5, 3)).astype(dtype)
    _compare_step(model, tmodel, x, dy, dtype, f"BatchNorm1d{kw} eval", path)
    with mc.no_grad():  # the compiled predict path
        assert_close_torch(model(x), tmodel(torch.tensor(x)), dtype, f"BatchNorm1d{kw} eval predict")


@pytest.mark.parametrize("path", PATHS)
def test_frozen_norm_parameters_get_no_gradient(path):
    dtype = np.float64
    model = _randomize(mc.Sequential(mc.Linear(4, C, bias=False, dtype=dtype, seed=3), mc.BatchNorm1d(C, dtype=dtype),
                                     mc.LayerNorm(C, dtype=dtype), mc.Linear(C, 2, dtype=dtype, seed=5)))
    model[1].weight.requires_grad = False
    model[2].bias.requires_grad = False
    tmodel = _torch_twin(model)
    tmodel[1].weight.requires_grad_(False)
    tmodel[2].bias.requires_grad_(False)
    model[1].weight.grad = np.full(C, 7.0)  # untouched by backward
    model[2].bias.grad = np.full(C, 7.0)
    x, _ = _data(dtype, cols=4)
    dy = np.random.default_rng(3).standard_normal((x.shape[0], 2))
    out = _forward(model, x, path)
    tx = torch.tensor(x, requires_grad=True)
    tout = tmodel(tx)
    assert_close_torch(out, tout, dtype, f"frozen {path} y")
    dx = _backward(model, dy, path)
    tout.backward(torch.tensor(dy))
    assert_close_torch(dx, tx.grad, dtype, f"frozen {path} d/dx")
    np.testing.assert_array_equal(model[1].weight.grad, 7.0)
    np.testing.assert_array_equal(model[2].bias.grad, 7.0)
    assert_close_torch(model[1].bias.grad, tmodel[1].bias.grad, dtype, f"frozen {path} d/d1.bias")
    assert_close_torch(model[2].weight.grad, tmodel[2].weight.grad, dtype, f"frozen {path} d/d2.weight")


@pytest.mark.parametrize("layer", ["layer_norm", "batch_norm", "batch_norm_eval"])
def test_norm_gradients_match_central_differences(layer):
    """Sum of the output times fixed weights, differentiated by backward and by central
    differences, for the input and every parameter (float64)."""
    rng = np.random.default_rng(0)
    m = mc.LayerNorm(C, dtype=np.float64) if layer == "layer_norm" else mc.BatchNorm1d(C, dtype=np.float64)
    _randomize(mc.Sequential(m))
    if layer == "batch_norm_eval":
        m.running_mean = rng.standard_normal(C)
        m.running_var = rng.uniform(0.5, 2.0, C)
        m.eval()
    x = rng.standard_normal((7, C)) * 1.5
    w = rng.standard_normal((7, C))

    def f():
        with mc.no_grad():
            return float(np.sum(m.forward(x) * w))

    m.zero_grad()
    m.forward(x)
    dx = m.backward(w)
    assert_close_fd(dx, numeric_grad(f, x), f"{layer} d/dx")
    for name, p in m.named_parameters():
        view = p.data  # a zero-copy view: numeric_grad perturbs the weights in place
        assert_close_fd(p.grad, numeric_grad(f, view), f"{layer} d/d{name}")
    assert max(mc.gradcheck(m, x).values()) < 1e-6  # the public checker agrees (it runs eval mode)


def test_compiled_train_step_matches_torch_with_norms():
    """Whole compiled steps (forward, loss, backward, SGD update) with BatchNorm and LayerNorm
    equal a PyTorch loop, running statistics included (float64)."""
    dtype = np.float64
    model = _randomize(mc.Sequential(mc.Linear(4, C, bias=False, dtype=dtype, seed=1), mc.BatchNorm1d(C, dtype=dtype),
                                     mc.ReLU(), mc.LayerNorm(C, dtype=dtype), mc.Linear(C, 3, dtype=dtype, seed=2)))
    tmodel = _torch_twin(model)
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    net, loss = model.compiled(), mc.CrossEntropyLoss()
    rng = np.random.default_rng(5)
    for step in range(5):
        x = rng.standard_normal((8, 4))
        y = rng.integers(0, 3, 8)
        value = net.train_step(opt._core, loss.kind, x, y)
        topt.zero_grad()
        tl = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        topt.step()
        assert_close_torch(value, tl, dtype, f"norm MLP train_step {step} loss")
    for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
        assert_close_torch(p.data, tp, dtype, f"norm MLP train_step d/{name}")
    assert_close_torch(model[1].running_var, tmodel[1].running_var, dtype, "norm MLP train_step running_var")
