"""The layer registry is the one place the Python side learns about a layer: a new layer class
plus one registry entry, written here and nowhere else, gets checkpoints, PyTorch interop both
ways, summary() and repr; without a ``lower`` it runs module by module (compiled() is None)."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.nn import registry


class Hardtanh(mc.Module):
    """clip(x, min_val, max_val), in numpy (no core op: not lowerable)."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        self.min_val, self.max_val = float(min_val), float(max_val)

    def forward(self, x):
        self._x = np.asarray(x)
        return np.clip(self._x, self.min_val, self.max_val)

    def backward(self, grad_output):
        return grad_output * ((self._x > self.min_val) & (self._x < self.max_val))


@pytest.fixture
def hardtanh():
    entry = registry.register(registry.Layer(
        Hardtanh,
        describe=lambda m, ctx: {"min_val": m.min_val, "max_val": m.max_val},
        build=lambda d, ctx, path: Hardtanh(d["min_val"], d["max_val"]),
        features=registry.passthrough,
        repr=lambda m: f"min_val={m.min_val}, max_val={m.max_val}",
        torch=registry.TorchTwin(("Hardtanh",),
                                 lambda m, torch, convert: torch.nn.Hardtanh(m.min_val, m.max_val),
                                 lambda t, torch, convert: Hardtanh(t.min_val, t.max_val)),
    ))
    yield entry
    registry._EXACT.pop(Hardtanh)
    registry._BY_NAME.pop("Hardtanh")
    registry._RESOLVED.clear()


def _model():
    return mc.Sequential(mc.Linear(4, 6, dtype=np.float64, seed=0), Hardtanh(-0.5, 0.5),
                         mc.Linear(6, 2, dtype=np.float64, seed=1))


def _x():
    return np.random.default_rng(0).standard_normal((5, 4)) * 3


def test_a_new_layer_needs_only_its_entry(hardtanh, tmp_path):
    model = _model()
    assert repr(model[1]) == "Hardtanh(min_val=-0.5, max_val=0.5)"
    assert "Hardtanh(min_val=-0.5, max_val=0.5)" in model.summary() and "(B, 6)" in model.summary()
    assert model.compiled() is None  # no lowering: module by module
    x = _x()
    out = model(x)
    path = tmp_path / "m.safetensors"
    mc.save(model, path)
    loaded = mc.load(path)
    assert isinstance(loaded[1], Hardtanh) and loaded[1].max_val == 0.5
    np.testing.assert_array_equal(loaded(x), out)


def test_a_new_layer_has_its_torch_twin(hardtanh):
    torch = pytest.importorskip("torch")
    model = _model()
    tm = model.to_torch()
    assert isinstance(tm[1], torch.nn.Hardtanh)
    x = _x()
    with torch.no_grad():
        np.testing.assert_allclose(tm(torch.from_numpy(x)).numpy(), model(x), rtol=1e-12)
    back = mc.from_torch(tm)
    assert isinstance(back[1], Hardtanh) and back[1].min_val == -0.5
    np.testing.assert_allclose(back(x), model(x), rtol=1e-12)


def test_unregistered_layers_are_custom_everywhere():
    model = _model()  # the entry is not registered in this test
    assert model.compiled() is None and repr(model[1]) == "Hardtanh()"
    with pytest.raises(ValueError, match="custom module Hardtanh"):
        mc.load_bytes(mc.save_bytes(model))
    with pytest.raises(TypeError, match="Hardtanh has no torch.nn equivalent"):
        model.to_torch()


def test_subclasses_keep_the_entry_only_when_they_compute_alike():
    class Net(mc.Sequential):  # builds its layers, computes as a Sequential
        def __init__(self):
            super().__init__(mc.Linear(3, 4, seed=0), mc.ReLU(), mc.Linear(4, 2, seed=1))

    class Noisy(mc.Linear):  # another forward: not the compiled Linear any more
        def forward(self, x):
            return super().forward(x) + 1.0

    assert registry.entry(Net) is registry.entry(mc.Sequential) and Net().compiled() is not None
    assert registry.entry(Noisy) is None
    assert mc.Sequential(Noisy(3, 2, seed=0)).compiled() is None
    assert registry.exact(Net) is None  # checkpoints and twins need the exact class


def test_every_built_in_layer_is_registered_once():
    names = registry.names()
    for cls in (mc.Linear, mc.TiedLinear, mc.ReLU, mc.LeakyReLU, mc.Sigmoid, mc.Tanh, mc.ELU, mc.GELU,
                mc.SiLU, mc.Softmax, mc.Identity, mc.Dropout, mc.Maxout, mc.Residual, mc.Sequential,
                mc.LayerNorm, mc.BatchNorm1d):
        e = registry.exact(cls)
        assert e is not None and e.name == cls.__name__ and e.name in names
        assert e.onnx is not None  # every built-in layer exports to ONNX


def test_lookup_by_a_loose_name():
    assert registry.lookup("leaky_relu").cls is mc.LeakyReLU and registry.lookup("SiLU").cls is mc.SiLU
    assert registry.lookup("relu").cls is mc.ReLU
    with pytest.raises(KeyError, match="unknown layer 'swish'"):
        registry.lookup("swish")
