"""LayerNorm and BatchNorm1d as modules: buffers (not parameters), state_dict / load_state_dict
under PyTorch's names (a torch twin loads it, and ours loads torch's), checkpoints, to_torch /
from_torch, pickle / deepcopy, summary and repr, freezing, and the errors they raise."""

import copy
import pickle

import helpers
import mlpcore as mc
import numpy as np
import pytest

F64 = np.float64


def _model(dtype=F64, **bn):
    return mc.Sequential(mc.Linear(4, 6, bias=False, dtype=dtype, seed=1), mc.BatchNorm1d(6, dtype=dtype, **bn),
                         mc.ReLU(), mc.LayerNorm(6, dtype=dtype), mc.Linear(6, 3, dtype=dtype, seed=2))


def _trained(dtype=F64, steps=3, **bn):
    """A model whose running statistics and weights moved off their initial values."""
    model = _model(dtype, **bn)
    opt, loss = mc.SGD(model.parameters(), lr=0.1), mc.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x, y = rng.standard_normal((8, 4)) * 2 + 1, rng.integers(0, 3, 8)
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
    return model


def _x(n=5):
    return np.random.default_rng(1).standard_normal((n, 4))


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_buffers_are_not_parameters_and_start_as_pytorch():
    bn = mc.BatchNorm1d(5)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(bn.weight.data, 1.0)
    np.testing.assert_array_equal(bn.bias.data, 0.0)
    np.testing.assert_array_equal(bn.running_mean, 0.0)
    np.testing.assert_array_equal(bn.running_var, 1.0)
    assert bn.num_batches_tracked.dtype == np.int64 and int(bn.num_batches_tracked) == 0
    assert mc.BatchNorm1d(5, affine=False).parameters() == []
    assert mc.BatchNorm1d(5, track_running_stats=False).running_mean is None
    ln = mc.LayerNorm((5,))
    assert ln.normalized_shape == (5,) and [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    assert mc.LayerNorm(5, elementwise_affine=False).parameters() == []
    assert list(mc.LayerNorm(5).named_buffers()) == []


def test_state_dict_uses_pytorch_names_and_order_and_a_torch_twin_loads_it():
    torch = helpers.import_torch()
    model = _trained()
    sd = model.state_dict()
    twin = model.to_torch()
    assert list(sd) == list(twin.state_dict())
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 6, bias=False), torch.nn.BatchNorm1d(6), torch.nn.ReLU(),
                                torch.nn.LayerNorm(6), torch.nn.Linear(6, 3)).double()
    fresh.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
    fresh.eval()
    model.eval()
    np.testing.assert_allclose(fresh(torch.from_numpy(_x())).detach().numpy(), model(_x()), rtol=1e-12, atol=1e-12)
    # and back: ours loads torch's state_dict (buffers written in place)
    other = _model()
    other.load_state_dict({k: v.numpy() for k, v in fresh.state_dict().items()})
    _same(other, model)


def test_load_state_dict_checks_buffers_before_writing_anything():
    model = _trained()
    before = model.state_dict()
    sd = dict(before)
    sd["1.running_var"] = np.ones(5)
    sd["0.weight"] = np.zeros((6, 4))
    with pytest.raises(ValueError, match="running_var"):
        model.load_state_dict(sd)
    sd["1.running_var"] = np.full(6, np.nan)
    with pytest.raises(ValueError, match="NaN"):
        model.load_state_dict(sd)
    _same(model, model)
    np.testing.assert_array_equal(model[0].weight.data, before["0.weight"])
    missing = {k: v for k, v in before.items() if k != "1.num_batches_tracked"}
    with pytest.raises(ValueError, match="num_batches_tracked"):
        model.load_state_dict(missing)
    assert model.load_state_dict(missing, strict=False).missing_keys == ["1.num_batches_tracked"]


@pytest.mark.parametrize("bn", [{}, {"momentum": None}, {"affine": False}, {"track_running_stats": False}])
def test_checkpoint_round_trip_keeps_buffers(tmp_path, bn):
    model = _trained(**bn)
    path = tmp_path / "m.safetensors"
    mc.save(model, path)
    back = mc.load(path)
    _same(back, model)
    assert repr(back) == repr(model)
    model.eval()
    back.eval()
    np.testing.assert_array_equal(back(_x()), model(_x()))
    # weights and buffers into an existing model by name
    other = _model(**bn)
    mc.load_state_into(other, path)
    _same(other, model)


def test_checkpoint_file_holds_pytorch_named_buffers(tmp_path):
    from safetensors.numpy import load_file

    model = _trained(dtype=np.float32)
    mc.save(model, tmp_path / "m.safetensors")
    t = load_file(tmp_path / "m.safetensors")
    assert t["1.running_mean"].dtype == np.float32 and t["1.running_mean"].shape == (6,)
    assert t["1.num_batches_tracked"].dtype == np.int64 and t["1.num_batches_tracked"].shape == ()
    assert int(t["1.num_batches_tracked"]) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_and_from_torch_round_trip(dtype):
    torch = helpers.import_torch()
    model = _trained(dtype)
    twin = model.to_torch()
    assert isinstance(twin[1], torch.nn.BatchNorm1d) and isinstance(twin[3], torch.nn.LayerNorm)
    assert int(twin[1].num_batches_tracked) == 3
    back = mc.from_torch(twin)
    _same(back, model)
    for m, t in ((model, twin), (back, twin)):
        m.eval()
        t.eval()
        helpers.assert_close_torch(m(_x().astype(dtype)), t(torch.from_numpy(_x().astype(dtype))), dtype,
                                   "norm model to_torch/from_torch")
    t = torch.nn.Sequential(torch.nn.BatchNorm1d(3, momentum=None, affine=False),
                            torch.nn.LayerNorm(3, elementwise_affine=False, eps=1e-3))
    m = mc.from_torch(t)
    assert m[0].momentum is None and not m[0].affine and not m[1].elementwise_affine and m[1].eps == 1e-3
    with pytest.raises(TypeError, match="several dimensions"):
        mc.from_torch(torch.nn.LayerNorm((2, 3)))


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_keep_buffers_and_frozen_flags(how):
    model = _trained()
    model[0].weight.requires_grad = False
    twin = pickle.loads(pickle.dumps(model)) if how == "pickle" else copy.deepcopy(model)
    _same(twin, model)
    assert not twin[0].weight.requires_grad and twin[4].weight.requires_grad
    # the copy trains on its own: its running statistics move, the original's do not
    before = model[1].running_mean
    twin(_x() * 3 + 2)
    np.testing.assert_array_equal(model[1].running_mean, before)
    assert not np.array_equal(twin[1].running_mean, before)


def test_buffers_move_with_the_model_and_its_arena():
    model = _model()  # built in one arena: parameters first, then the running statistics
    arenas = {id(p._arena) for p in model.parameters()} | {id(model[1]._stats._arena)}
    assert len(arenas) == 1
    assert model.compiled() is not None
    if not mc.cuda_available():
        with pytest.raises(RuntimeError, match="cuda"):
            model.to("cuda")
        return
    trained = _trained()
    trained.to("cuda")
    assert trained[1]._stats.device == "cuda"
    np.testing.assert_array_equal(trained.to("cpu").state_dict()["1.running_var"], _trained().state_dict()["1.running_var"])


def test_summary_shows_buffers_and_frozen_parameters():
    model = _model()
    model[0].weight.requires_grad = False
    text = model.summary()
    lines = text.splitlines()
    assert lines[-2] == "buffers: 13 values in 3 tensors (not trained)"
    assert lines[-1] == "parameters: 69 in 7 tensors (float64, cpu), 24 frozen"
    row = {ln.split()[0]: ln for ln in lines[2:] if ln and ln[0].isdigit()}
    assert row["0"].rstrip().endswith("24 frozen")
    assert "BatchNorm1d(6, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)" in row["1"]
    assert row["1"].rstrip().endswith("12") and "(B, 6)" in row["1"]
    assert "LayerNorm((6,), eps=1e-05, elementwise_affine=True)" in row["3"]
    model[4].bias.requires_grad = False
    assert model.summary().splitlines()[-1].endswith("27 frozen")


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="normalized_shape is 5 but the input has 4 features"):
        mc.LayerNorm(5)(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="expects 5 input features"):
        mc.Sequential(mc.Linear(3, 4), mc.LayerNorm(5))
    with pytest.raises(ValueError, match="normalized_shape"):
        mc.LayerNorm((2, 3))
    with pytest.raises(ValueError, match="num_features is 5 but the input has 3"):
        mc.BatchNorm1d(5)(np.zeros((4, 3)))
    one = np.ones((1, 4))
    for model in (mc.BatchNorm1d(4), _model()):
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
            model(one if isinstance(model, mc.BatchNorm1d) else np.ones((1, 4)))
    model = _model()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model._forward_modules(one)
    trainer = mc.Trainer(model, batch_size=4)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        trainer.fit(np.ones((5, 4)), np.zeros(5, dtype=int), epochs=1, shuffle=False, verbose=0)  # last batch: 1 row
    model.eval()
    assert model(one).shape == (1, 3)  # eval mode uses the running statistics: one row is fine
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        mc.BatchNorm1d(4, track_running_stats=False).eval()(one)  # PyTorch too: batch statistics
    with pytest.raises(ValueError, match="eps"):
        mc.BatchNorm1d(4, eps=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        mc.BatchNorm1d(4, momentum=float("nan"))
    with pytest.raises(RuntimeError, match="track_running_stats=False"):
        mc.BatchNorm1d(4, track_running_stats=False).running_mean = np.zeros(4)
    with pytest.raises(TypeError, match="requires_grad"):
        mc.Linear(2, 2).weight.requires_grad = 1
