"""Optimizers against torch.optim: the same small MLP (weights copied), the same batches, ~20
steps through the module-by-module path; then state_dict round trips, and optimizers whose
parameters are wrapped in a Sequential or moved afterwards (they keep working, state included).

Tolerances: float64 1e-10 relative to the largest weight (only summation order differs from
PyTorch), float32 1e-5.
"""

import numpy as np
import pytest

import mlpcore as mc

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


SIZES = (6, 16, 12, 4)
STEPS = 20
BATCH = 16

# (mlpcore class, torch class, kwargs accepted by both)
CONFIGS = {
    "sgd": (mc.SGD, "SGD", dict(lr=0.1)),
    "sgd_momentum": (mc.SGD, "SGD", dict(lr=0.05, momentum=0.9)),
    "sgd_nesterov": (mc.SGD, "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (mc.SGD, "SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05)),
    "sgd_wd_no_momentum": (mc.SGD, "SGD", dict(lr=0.1, weight_decay=0.1)),
    "adam": (mc.Adam, "Adam", dict(lr=0.01)),
    "adam_betas_eps": (mc.Adam, "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    "adam_weight_decay": (mc.Adam, "Adam", dict(lr=0.01, weight_decay=0.1)),
    "adamw": (mc.AdamW, "AdamW", dict(lr=0.01, weight_decay=0.1)),
    "adamw_default_wd": (mc.AdamW, "AdamW", dict(lr=0.01)),
    "rmsprop": (mc.RMSprop, "RMSprop", dict(lr=0.01)),
    "rmsprop_momentum": (mc.RMSprop, "RMSprop", dict(lr=0.005, momentum=0.9)),
    "rmsprop_centered": (mc.RMSprop, "RMSprop", dict(lr=0.01, centered=True)),
    "rmsprop_weight_decay": (mc.RMSprop, "RMSprop", dict(lr=0.01, weight_decay=0.1, alpha=0.9)),
    "rmsprop_all": (mc.RMSprop, "RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.05)),
}


def make_mc(dtype, seed=0):
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(mc.Linear(a, b, dtype=dtype, seed=seed + i))
        if i < len(SIZES) - 2:
            layers.append(mc.Tanh())
    return mc.Sequential(*layers)


def torch_twin(model):
    """A torch.nn.Sequential with the same layers and copied weights."""
    mods = []
    for m in model:
        if isinstance(m, mc.Linear):
            tdt = torch.float64 if m.dtype == np.float64 else torch.float32
            lin = torch.nn.Linear(m.in_features, m.out_features, dtype=tdt)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(m.weight.data.copy()))
                lin.bias.copy_(torch.from_numpy(m.bias.data.copy()))
            mods.append(lin)
        else:
            mods.append(torch.nn.Tanh())
    return torch.nn.Sequential(*mods)


def batches(dtype, n=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, SIZES[0])).astype(dtype), rng.integers(0, SIZES[-1], BATCH))
            for _ in range(n)]


def mc_step(model, loss, opt, x, y):
    model.zero_grad()
    value = loss(model(x), y)
    model.backward(loss.backward())
    opt.step()
    return value


def torch_step(model, opt, x, y):
    opt.zero_grad()
    value = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    value.backward()
    opt.step()
    return value.item()


def torch_weights(tmodel):
    return [p.detach().numpy() for p in tmodel.parameters()]


def max_rel_diff(mc_model, tmodel):
    a = [p.data for p in mc_model.parameters()]
    b = torch_weights(tmodel)
    assert [x.shape for x in a] == [x.shape for x in b]
    scale = max(np.max(np.abs(x)) for x in b)
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)) / scale


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_optimizer_matches_torch(name, dtype, tol):
    mc_cls, torch_name, kw = CONFIGS[name]
    model = make_mc(dtype)
    tmodel = torch_twin(model)
    assert max_rel_diff(model, tmodel) == 0.0
    opt = mc_cls(model.parameters(), **kw)
    topt = getattr(torch.optim, torch_name)(tmodel.parameters(), **kw)
    loss = mc.CrossEntropyLoss()
    for x, y in batches(dtype):
        lv = mc_step(model, loss, opt, x, y)
        tv = torch_step(tmodel, topt, x, y)
        assert lv == pytest.approx(tv, rel=100 * tol)
    assert opt.step_count == STEPS
    assert max_rel_diff(model, tmodel) <= tol
    # the weights moved: the comparison is not trivially between two untouched models
    assert max_rel_diff(model, torch_twin(make_mc(dtype))) > 1e-3


def test_lr_change_mid_training_matches_torch():
    model = make_mc(np.float64)
    tmodel = torch_twin(model)
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    loss = mc.CrossEntropyLoss()
    for i, (x, y) in enumerate(batches(np.float64)):
        if i == 10:
            opt.lr = 0.01
            topt.param_groups[0]["lr"] = 0.01
        mc_step(model, loss, opt, x, y)
        torch_step(tmodel, topt, x, y)
    assert opt.lr == 0.01
    assert max_rel_diff(model, tmodel) <= 1e-10


def test_adam_state_layout_matches_torch_moments():
    """The flat state of a one-arena model is [m | v] over the whole arena (weights at their
    arena offsets): compare with torch's exp_avg / exp_avg_sq."""
    model = make_mc(np.float64)
    tmodel = torch_twin(model)
    opt = mc.Adam(model.parameters(), lr=0.01)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01)
    loss = mc.CrossEntropyLoss()
    for x, y in batches(np.float64, n=5):
        mc_step(model, loss, opt, x, y)
        torch_step(tmodel, topt, x, y)
    state = opt.state_dict()["state"]
    n = state.size // 2
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        m = state[p._offset:p._offset + p.numel].reshape(p.shape)
        v = state[n + p._offset:n + p._offset + p.numel].reshape(p.shape)
        np.testing.assert_allclose(m, topt.state[tp]["exp_avg"].numpy(), rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(v, topt.state[tp]["exp_avg_sq"].numpy(), rtol=1e-9, atol=1e-18)


# ----- state_dict / load_state_dict -----

@pytest.mark.parametrize("name", ["sgd_nesterov", "adam_weight_decay", "adamw", "rmsprop_all"])
def test_state_dict_round_trip_resumes_exactly(name):
    """Train 8 steps, save; a fresh model with the same weights plus a fresh optimizer loaded from
    the state continues bit for bit like the original."""
    mc_cls, _, kw = CONFIGS[name]
    data = batches(np.float64, n=16)
    loss = mc.CrossEntropyLoss()
    a = make_mc(np.float64)
    opt_a = mc_cls(a.parameters(), **kw)
    for x, y in data[:8]:
        mc_step(a, loss, opt_a, x, y)
    sd = opt_a.state_dict()
    assert sd["type"] == mc_cls.__name__ and sd["step"] == 8
    assert np.any(sd["state"] != 0)

    b = make_mc(np.float64, seed=100)  # different init, weights copied below
    for p, q in zip(b.parameters(), a.parameters()):
        p.data = q.data
    opt_b = mc_cls(b.parameters(), lr=0.5)  # hyper-parameters come from the state dict
    opt_b.load_state_dict(sd)
    assert opt_b.step_count == 8 and opt_b.lr == opt_a.lr
    np.testing.assert_array_equal(opt_b.state_dict()["state"], sd["state"])
    for x, y in data[8:]:
        mc_step(a, loss, opt_a, x, y)
        mc_step(b, loss, opt_b, x, y)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_snapshot_and_fresh_state_differs():
    """state_dict() copies: stepping afterwards does not change a saved dict; loading an
    old state rewinds the step count (bias correction) and the moments."""
    model = make_mc(np.float64)
    opt = mc.Adam(model.parameters(), lr=0.01)
    loss = mc.CrossEntropyLoss()
    data = batches(np.float64, n=4)
    mc_step(model, loss, opt, *data[0])
    sd = opt.state_dict()
    saved = sd["state"].copy()
    mc_step(model, loss, opt, *data[1])
    np.testing.assert_array_equal(sd["state"], saved)
    assert not np.array_equal(opt.state_dict()["state"], saved)
    opt.load_state_dict(sd)
    assert opt.step_count == 1
    np.testing.assert_array_equal(opt.state_dict()["state"], saved)


def test_load_state_dict_refuses_other_optimizer_and_wrong_size():
    model = make_mc(np.float64)
    sgd = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    adam = mc.Adam(model.parameters())
    with pytest.raises(ValueError, match="SGD"):
        adam.load_state_dict(sgd.state_dict())
    small = mc.Sequential(mc.Linear(2, 2, dtype=np.float64, seed=0))
    with pytest.raises(ValueError, match="expected"):
        mc.SGD(small.parameters(), lr=0.1, momentum=0.9).load_state_dict(sgd.state_dict())


# ----- optimizers made before the model is wrapped, and parameters that move -----

def _reference(opt_cls, kw, dtype=np.float64):
    """A model built normally with its optimizer: what the variants below must reproduce bit for bit."""
    model = make_mc(dtype)
    return model, opt_cls(model.parameters(), **kw)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "rmsprop_all"])
def test_optimizer_made_before_the_sequential_keeps_working(name):
    """As in PyTorch: an optimizer built over loose layers keeps updating them once a Sequential
    holds them (the layers stay in their own arenas, the model spans them), through both paths."""
    cls, _, kw = CONFIGS[name]
    ref, ref_opt = _reference(cls, kw)
    layers = [mc.Linear(a, b, dtype=np.float64, seed=i) for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:]))]
    opt = cls([p for lin in layers for p in lin.parameters()], **kw)
    model = mc.Sequential(layers[0], mc.Tanh(), layers[1], mc.Tanh(), layers[2])
    assert len({id(p._arena) for p in model.parameters()}) == 3  # pinned by the optimizer: nothing moved
    loss = mc.CrossEntropyLoss()
    data = batches(np.float64, n=6)
    for x, y in data[:3]:
        mc_step(ref, loss, ref_opt, x, y)
        mc_step(model, loss, opt, x, y)
    net, ref_net = model.compiled(), ref.compiled()
    assert net is not None
    for x, y in data[3:]:
        ref_net.train_step(ref_opt._core, loss.kind, x, y)
        net.train_step(opt._core, loss.kind, x, y)
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.step_count == ref_opt.step_count == 6


@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "rmsprop_all"])
def test_optimizer_follows_moved_parameters_with_its_state(name):
    """Parameters gathered into another arena (what model.to(device) does) take the optimizer
    along: its next step updates the new memory, with the momentum / moments / step count it had.
    Moved repeatedly, so that a freed arena's address is reused by a later one."""
    from mlpcore.nn.parameter import gather

    cls, _, kw = CONFIGS[name]
    ref, ref_opt = _reference(cls, kw)
    model, opt = _reference(cls, kw)
    loss = mc.CrossEntropyLoss()
    for i, (x, y) in enumerate(batches(np.float64, n=12)):
        mc_step(ref, loss, ref_opt, x, y)
        if i % 2:
            params = model.parameters()[::-1] if i % 4 == 1 else model.parameters()  # another layout too
            gather(params, "cpu", np.dtype(np.float64))
        mc_step(model, loss, opt, x, y)
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.step_count == ref_opt.step_count == 12


@pytest.mark.skipif(not mc.cuda_available(), reason="needs a CUDA device")
def test_optimizer_follows_the_model_to_cuda():
    """model.to("cuda") after the optimizer was made: the optimizer's state moves with the
    parameters and its next steps run on the device (as a CPU twin, to float32 rounding)."""
    cls, _, kw = CONFIGS["adam"]
    ref, ref_opt = _reference(cls, kw, np.float32)
    model, opt = _reference(cls, kw, np.float32)
    loss = mc.CrossEntropyLoss()
    data = batches(np.float32, n=6)
    for x, y in data[:3]:
        mc_step(ref, loss, ref_opt, x, y)
        mc_step(model, loss, opt, x, y)
    model.to("cuda")
    net, ref_net = model.compiled(), ref.compiled()
    for x, y in data[3:]:
        ref_net.train_step(ref_opt._core, loss.kind, x, y)
        net.train_step(opt._core, loss.kind, x, y)
    assert opt.step_count == 6
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-4, atol=1e-5)


def test_compiled_step_refuses_optimizer_of_other_parameters():
    """The compiled path drives opt._core directly: an optimizer whose parameters are not in the
    network's arenas (another model's) must be refused, not silently step other memory."""
    l1, l2 = mc.Linear(3, 4, seed=0), mc.Linear(4, 2, seed=1)
    model = mc.Sequential(l1, mc.ReLU(), l2)
    other = mc.Sequential(mc.Linear(3, 4, seed=0), mc.ReLU(), mc.Linear(4, 2, seed=1))
    opt = mc.SGD(other.parameters(), lr=0.1)
    net = model.compiled()
    x = np.ones((2, 3), np.float32)
    y = np.array([0, 1])
    with pytest.raises(RuntimeError, match="optimizer"):
        net.train_step(opt._core, mc.CrossEntropyLoss.kind, x, y)
    with pytest.raises(RuntimeError, match="optimizer"):
        net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, x, y, 2, False, 0)
    # the right optimizer works, also one over a subset of the parameters (a frozen first layer)
    w0 = l1.weight.data.copy()
    net.train_step(mc.SGD(l2.parameters(), lr=0.1)._core, mc.CrossEntropyLoss.kind, x, y)
    np.testing.assert_array_equal(l1.weight.data, w0)
    net.train_step(mc.SGD(model.parameters(), lr=0.1)._core, mc.CrossEntropyLoss.kind, x, y)
    assert not np.array_equal(l1.weight.data, w0)


# ----- argument validation -----

def test_optimizer_argument_errors():
    model = make_mc(np.float32)
    ps = model.parameters()
    with pytest.raises(ValueError, match="lr"):
        mc.SGD(ps, lr=-0.1)
    with pytest.raises(ValueError, match="nesterov"):
        mc.SGD(ps, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        mc.Adam(ps, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="alpha"):
        mc.RMSprop(ps, alpha=1.5)
    with pytest.raises(TypeError, match="parameters"):
        mc.SGD(model, lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        mc.Adam([])
    opt = mc.SGD(ps, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = 0.0
