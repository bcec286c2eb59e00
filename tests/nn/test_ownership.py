"""Who owns parameter memory, and what a model knows without walking its tree.

- A Sequential gathers its layers into one flat arena only when nothing outside points into their
  arenas (no .data / .grad view handed out, no optimizer, no compiled network handed out) and the
  arenas hold nothing but this model's parameters; otherwise the layers stay put, the views taken
  earlier stay live and the compiled network spans several arenas.
- Each model has a version: changes below it (a move, a lowered hyper-parameter, a child) bump it
  and its ancestors (weakly known parents); unrelated models never invalidate it.
- train() / eval() know when the whole tree is in one mode; a mixed tree runs module by module.
"""

import gc
import weakref

import numpy as np
import pytest

import mlpcore as mc


def _x(n=5, f=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, f))


def _arenas(model):
    return {id(p._arena) for p in model.parameters()}


def _lin(a, b, seed):
    return mc.Linear(a, b, dtype=np.float64, seed=seed)


def test_a_fresh_sequential_is_one_flat_arena():
    tied = mc.TiedLinear(_lin(3, 6, 2), transpose=False)  # its source is gone: only the tie is left
    model = mc.Sequential(_lin(4, 6, 0), mc.ReLU(), _lin(6, 3, 1), tied)
    assert len(_arenas(model)) == 1
    offsets = [p._offset for p in model.parameters()]
    assert offsets == sorted(offsets)  # model order


def test_views_taken_before_the_sequential_stay_live():
    l0, l1 = _lin(4, 6, 0), _lin(6, 3, 1)
    w = l0.weight.data  # a view handed out: l0's arena is pinned
    model = mc.Sequential(l0, mc.Tanh(), l1)
    assert len(_arenas(model)) == 2 and l0.weight._arena.pinned and not l1.weight._arena.pinned
    x = _x()
    w[...] = 0.5  # writes reach the model, on both paths
    want = np.tanh(x @ np.full((6, 4), 0.5).T + l0.bias.data) @ l1.weight.data.T + l1.bias.data
    np.testing.assert_allclose(model(x), want, rtol=1e-13)
    np.testing.assert_array_equal(model(x), model._forward_modules(x))
    opt = mc.SGD(model.parameters(), lr=0.1)
    model.zero_grad()
    model.backward(np.ones((5, 3)))
    opt.step()
    assert not np.all(w == 0.5)  # the training step updated the memory the old view shows
    np.testing.assert_array_equal(w, model[0].weight.data)


def test_an_arena_shared_with_another_model_stays():
    l0, l1 = _lin(4, 6, 0), _lin(6, 3, 1)
    whole = mc.Sequential(l0, mc.ReLU(), l1)
    part = mc.Sequential(l1)  # l1's arena also holds l0's parameters: it stays, both models share it
    assert _arenas(part) <= _arenas(whole) and len(_arenas(whole)) == 1
    x = _x(f=6)
    np.testing.assert_array_equal(part(x), part._forward_modules(x))


def test_nested_sequential_without_outside_pointers_is_flattened():
    inner = mc.Sequential(_lin(4, 6, 0), mc.ReLU(), _lin(6, 6, 1))
    outer = mc.Sequential(inner, mc.Tanh(), _lin(6, 2, 2))
    assert len(_arenas(outer)) == 1 and _arenas(inner) == _arenas(outer)


def test_optimizer_pins_and_compiled_pins():
    a = mc.Sequential(_lin(4, 6, 0))
    mc.SGD(a.parameters(), lr=0.1)
    b = mc.Sequential(_lin(6, 3, 1))
    b.compiled()
    c = mc.Sequential(_lin(3, 2, 2))
    model = mc.Sequential(a, b, c)
    assert len(_arenas(model)) == 3
    assert model.compiled() is not None  # one network over three arenas
    x = _x()
    np.testing.assert_array_equal(model(x), model._forward_modules(x))


def test_to_the_same_device_is_a_no_op_and_views_stay_live():
    model = mc.Sequential(_lin(4, 3, 0))
    w = model[0].weight.data
    arena = model[0].weight._arena
    assert model.to("cpu") is model and model[0].weight._arena is arena
    w[...] = 1.0
    np.testing.assert_array_equal(model[0].weight.data, 1.0)
    with pytest.raises(ValueError, match="device"):
        model.to("tpu")


def test_layers_are_fixed():
    model = mc.Sequential(_lin(4, 3, 0), mc.ReLU())
    assert isinstance(model.layers, tuple)
    with pytest.raises(AttributeError):
        model.layers.append(mc.ReLU())


# ----- versions -----

def test_changes_bump_the_module_and_its_ancestors_only():
    act = mc.LeakyReLU(0.1)
    inner = mc.Sequential(_lin(4, 4, 0), act)
    outer = mc.Sequential(inner, _lin(4, 2, 1))
    other = mc.Sequential(_lin(4, 2, 2))
    v = (act._version, inner._version, outer._version, other._version)
    act.negative_slope = 0.2
    assert act._version > v[0] and inner._version > v[1] and outer._version > v[2]
    assert other._version == v[3]
    net = other.compiled()
    mc.Sequential(_lin(4, 4, 3), mc.Dropout(0.1))  # building models elsewhere changes nothing here
    mc.Dropout(0.5).p = 0.2
    assert other.compiled() is net and other._version == v[3]


def test_changing_a_lowered_value_rebuilds_and_follows_it():
    drop = mc.Dropout(0.5, seed=0)
    model = mc.Sequential(_lin(4, 8, 0), drop, _lin(8, 2, 1))
    net = model._network()
    drop.p = 0.0
    assert model._network() is not net
    x = _x()
    np.testing.assert_array_equal(model(x), model._forward_modules(x))  # train mode, p = 0: identity


def test_custom_module_adopts_children_assigned_later():
    class Wrapper(mc.Module):
        def forward(self, x):
            return self.body.forward(x)

        def backward(self, g):
            return self.body.backward(g)

    w = Wrapper()
    w.body = mc.Sequential(_lin(4, 3, 0))
    v = w._version
    w.body[0].weight.data = np.ones((3, 4))  # a write is no change of layout
    assert w._version == v
    assert w.parameters() == w.body.parameters() and w.dtype == np.float64
    w.body = mc.Sequential(_lin(4, 2, 1))  # a new child: the cached parameter list follows
    assert w._version > v and w.parameters()[0].shape == (2, 4)


def test_parents_are_weak():
    lin = _lin(4, 3, 0)
    model = mc.Sequential(lin, mc.ReLU())
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None  # the layer's parent link did not keep the model alive
    mc.Sequential(lin)  # and the layer can be used again


def test_backward_after_a_change_between_forward_and_backward_is_refused():
    drop = mc.Dropout(0.5, seed=0)
    model = mc.Sequential(_lin(4, 8, 0), drop, _lin(8, 2, 1))
    model(_x())
    drop.p = 0.25
    with pytest.raises(RuntimeError, match="changed since the forward"):
        model.backward(np.ones((5, 2)))


# ----- modes -----

def test_mixed_modes_run_module_by_module():
    model = mc.Sequential(_lin(4, 32, 0), mc.Dropout(0.5, seed=3), _lin(32, 2, 1))
    x = _x()
    model.eval()
    assert model._uniform_mode() is False
    model[1].train()  # a child switched on its own: the tree is mixed
    assert model._uniform_mode() is None
    twin = mc.Sequential(_lin(4, 32, 0), mc.Dropout(0.5, seed=3), _lin(32, 2, 1)).eval()
    twin[1].train()
    np.testing.assert_array_equal(model(x), twin._forward_modules(x))  # dropout drew, as module by module
    assert model[1]._state.counter == x.shape[0] * 32
    model[1].eval()
    assert model._uniform_mode() is False
    net = model._network()
    np.testing.assert_array_equal(model(x), net.predict(x))
    model[1].training = True  # plain attribute writes count too
    assert model._uniform_mode() is None
    model.train()
    assert model._uniform_mode() is True and net.training


def test_train_reaches_every_module_once_then_is_free():
    model = mc.Sequential(mc.Sequential(_lin(4, 4, 0), mc.Dropout(0.2)), _lin(4, 2, 1))
    model.eval()
    assert all(not m.training for m in model.modules())
    model[0][1].train()
    model.eval()
    assert not model[0][1].training
    model.train()
    assert all(m.training for m in model.modules()) and model[0]._uniform_mode() is True


def test_tied_layer_over_a_pinned_source_runs_module_by_module():
    """One compiled op reads one arena: a TiedLinear whose source stayed in its own (pinned) arena
    while its bias was gathered elsewhere cannot be lowered; the model still runs, module by module."""
    enc = _lin(4, 3, 0)
    w = enc.weight.data  # pins the source
    model = mc.Sequential(enc, mc.Tanh(), mc.TiedLinear(enc, transpose=True))
    assert model.compiled() is None
    x = _x()
    want = np.tanh(x @ w.T + enc.bias.data) @ w + model[2].bias.data
    np.testing.assert_allclose(model(x), want, rtol=1e-13)
