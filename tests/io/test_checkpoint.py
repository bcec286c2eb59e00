"""Checkpoints (mlpcore.io): round trips of every built-in module, optimizer state and resume,
atomic writes, corrupt files, NaN refusal, and PyTorch interop both ways."""

import json
import os
import struct

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import io as mio
from mlpcore.io import atomic as matomic


def _mlp(seed=0, dtype=np.float32):
    return mc.Sequential(mc.Linear(5, 8, seed=seed, dtype=dtype), mc.ReLU(), mc.Linear(8, 3, seed=seed + 1, dtype=dtype))


def _x(n=7, f=5, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(dtype)


def _every_module_model():
    enc = mc.Linear(6, 4, seed=3)
    return mc.Sequential(
        mc.Linear(5, 6, seed=1), mc.LeakyReLU(0.2),
        mc.Residual(mc.Sequential(mc.Linear(6, 6, seed=2), mc.ELU(0.7), mc.Dropout(0.25, seed=11))),
        enc, mc.GELU(), mc.TiedLinear(enc, transpose=True), mc.SiLU(),
        mc.Maxout(6, 4, pieces=3, seed=4), mc.Tanh(), mc.Linear(4, 4, bias=False, seed=5), mc.Sigmoid(),
        mc.Identity(), mc.Linear(4, 3, seed=6), mc.Softmax(),
    )


def test_round_trip_every_module(tmp_path):
    model = _every_module_model()
    x = _x(9, 5)
    model.eval()
    ref = model(x)
    path = tmp_path / "m.safetensors"
    mc.save(model, path)
    loaded = mc.load(path).eval()
    assert [type(m) for m in loaded.modules()] == [type(m) for m in model.modules()]
    assert [(n, p.shape) for n, p in loaded.named_parameters()] == [(n, p.shape) for n, p in model.named_parameters()]
    np.testing.assert_array_equal(loaded(x), ref)
    # the tie survives: one shared Parameter, not a copy
    assert loaded[5].weight is loaded[3].weight
    assert loaded[2].block[2].p == 0.25 and loaded[1].negative_slope == pytest.approx(0.2)
    # the compiled path accepts the rebuilt model and gives the same numbers
    np.testing.assert_allclose(loaded.compiled().predict(x), ref, rtol=1e-6, atol=1e-7)


def test_file_layout_is_pytorch_style(tmp_path):
    from safetensors.numpy import load_file

    model = _mlp()
    path = tmp_path / "m.safetensors"
    mc.save(model, path)
    tensors = load_file(str(path))
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert tensors["0.weight"].shape == (8, 5) and tensors["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(tensors["2.weight"], model[2].weight.data)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n))["__metadata__"]
    arch = json.loads(meta["architecture"])
    assert meta["format"] == "mlpcore" and meta["dtype"] == "float32"
    assert arch == {"type": "Sequential", "layers": [
        {"type": "Linear", "in_features": 5, "out_features": 8, "bias": True, "init": "he_uniform"},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 8, "out_features": 3, "bias": True, "init": "he_uniform"}]}


def test_float64_and_bytes_round_trip():
    model = _mlp(dtype=np.float64)
    data = mc.save_bytes(model, extra={"note": "x"})
    loaded = mc.load_bytes(data)
    assert loaded.dtype == np.float64
    x = _x(dtype=np.float64)
    np.testing.assert_array_equal(loaded(x), model(x))
    ck = mio.load_checkpoint_bytes(data)
    assert ck["extra"] == {"note": "x"} and ck["epoch"] is None and ck["optimizer_state"] is None


@pytest.mark.parametrize("opt_cls", [mc.SGD, mc.Adam, mc.AdamW, mc.RMSprop])
def test_resume_is_bit_exact(tmp_path, opt_cls):
    """Train 2 epochs, save (model + optimizer + epoch), train 2 more; versus: load and train 2
    more. The weights must be identical bit for bit."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    kw = {"momentum": 0.9} if opt_cls is mc.SGD else {}
    lk = mc.CrossEntropyLoss().kind

    def make_opt(m):
        return opt_cls(m.parameters(), lr=0.01, **kw)

    model = mc.Sequential(mc.Linear(5, 8, seed=0), mc.ReLU(), mc.Dropout(0.2, seed=5), mc.Linear(8, 3, seed=1))
    opt = make_opt(model)
    net = model.compiled()
    for e in range(2):
        net.train_epoch(opt._core, lk, X, y, 16, True, 7, e, True)
    path = tmp_path / "ck.safetensors"
    mc.save(model, path, optimizer=opt, epoch=2, extra={"lr": 0.01})
    for e in range(2, 4):
        net.train_epoch(opt._core, lk, X, y, 16, True, 7, e, True)

    ck = mc.load_checkpoint(path)
    assert ck["epoch"] == 2 and ck["extra"] == {"lr": 0.01}
    assert ck["optimizer_state"]["type"] == opt_cls.__name__ and ck["optimizer_state"]["step"] == 8
    m2 = ck["model"]
    opt2 = make_opt(m2)
    opt2.load_state_dict(ck["optimizer_state"])
    net2 = m2.compiled()
    for e in range(2, 4):
        net2.train_epoch(opt2._core, lk, X, y, 16, True, 7, e, True)
    for (n, a), (_, b) in zip(model.named_parameters(), m2.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)


def test_load_state_into(tmp_path):
    src, dst = _mlp(seed=0), _mlp(seed=10)
    path = tmp_path / "w.safetensors"
    mc.save(src, path)
    assert mc.load_state_into(dst, path) is dst
    x = _x()
    np.testing.assert_array_equal(dst(x), src(x))


def test_load_state_into_mismatch_names_tensor(tmp_path):
    path = tmp_path / "w.safetensors"
    mc.save(_mlp(), path)
    wider = mc.Sequential(mc.Linear(5, 9), mc.ReLU(), mc.Linear(9, 3))
    with pytest.raises(ValueError, match=r"'0\.weight'.*\(8, 5\).*\(9, 5\)"):
        mc.load_state_into(wider, path)
    deeper = mc.Sequential(mc.Linear(5, 8), mc.ReLU(), mc.Linear(8, 3), mc.ReLU(), mc.Linear(3, 3))
    with pytest.raises(ValueError, match=r"missing \['4\.weight', '4\.bias'\]"):
        mc.load_state_into(deeper, path)


class _Square(mc.Module):
    """A custom numpy module: no architecture can be recorded for it."""

    def forward(self, x):
        self._x = x
        return x * x

    def backward(self, g):
        return 2 * self._x * g


def test_custom_module_saves_weights_only(tmp_path):
    model = mc.Sequential(mc.Linear(5, 4, seed=0), _Square(), mc.Linear(4, 2, seed=1))
    path = tmp_path / "c.safetensors"
    mc.save(model, path)
    with pytest.raises(ValueError, match="custom module _Square.*load_state_into"):
        mc.load(path)
    other = mc.Sequential(mc.Linear(5, 4, seed=7), _Square(), mc.Linear(4, 2, seed=8))
    mc.load_state_into(other, path)
    x = _x()
    np.testing.assert_array_equal(other(x), model(x))
    # the whole checkpoint (optimizer state, epoch) loads into an existing model as well
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    mc.save(model, path, optimizer=opt, epoch=4)
    third = mc.Sequential(mc.Linear(5, 4, seed=9), _Square(), mc.Linear(4, 2, seed=10))
    ck = mc.load_checkpoint(path, model=third)
    assert ck["model"] is third and ck["epoch"] == 4 and ck["optimizer_state"]["type"] == "SGD"
    np.testing.assert_array_equal(third(x), model(x))


def test_refuses_nonfinite_weights(tmp_path):
    model = _mlp()
    model[2].bias.data[1] = np.nan  # in-place write into the arena view
    path = tmp_path / "n.safetensors"
    with pytest.raises(ValueError, match=r"'2\.bias'.*NaN"):
        mc.save(model, path)
    assert not path.exists()
    mc.save(model, path, allow_nonfinite=True)
    assert np.isnan(mc.load(path)[2].bias.data[1])


def test_atomic_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    old = _mlp(seed=0)
    mc.save(old, path)
    before = path.read_bytes()

    def fail_midway(f, data):
        f.write(data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(matomic, "_write_chunks", fail_midway)
    with pytest.raises(OSError, match="simulated"):
        mc.save(_mlp(seed=5), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]  # the temp file is gone
    monkeypatch.undo()

    def fail_fsync(fd):
        raise OSError("fsync failed (simulated)")

    monkeypatch.setattr(matomic.os, "fsync", fail_fsync)
    with pytest.raises(OSError, match="fsync"):
        mc.save(_mlp(seed=5), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]
    x = _x()
    np.testing.assert_array_equal(mc.load(path)(x), old(x))


def test_save_errors_name_the_users_path(tmp_path, monkeypatch):
    """Not the temp file behind the atomic write: the path the user gave."""
    missing = tmp_path / "no_such_dir" / "m.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        mc.save(_mlp(), missing)
    assert info.value.filename == str(missing) and ".tmp" not in str(info.value)
    with pytest.raises(IsADirectoryError) as info:
        mc.save(_mlp(), tmp_path)
    assert info.value.filename == str(tmp_path) and ".tmp" not in str(info.value)

    def no_space(f, data):
        raise OSError(28, "No space left on device", f.name)

    monkeypatch.setattr(matomic, "_write_chunks", no_space)
    path = tmp_path / "m.safetensors"
    with pytest.raises(OSError, match="No space left") as info:
        mc.save(_mlp(), path)
    assert info.value.filename == str(path) and ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_corrupt_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "m.safetensors"
    mc.save(_mlp(), path)
    data = path.read_bytes()
    cases = {
        "empty": b"",
        "short": data[:5],
        "truncated header": data[:40],
        "truncated tensors": data[:-10],
        "garbage": b"\x00" * 8 + b"not a checkpoint at all",
        "bad json": struct.pack("<Q", 10) + b"{not json}" + b"x" * 20,
    }
    for name, blob in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(blob)
        with pytest.raises(ValueError, match=str(p.name).replace(".", r"\.")):
            mc.load(p)
        with pytest.raises(ValueError):
            mc.load_checkpoint(p)
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.ones((2, 2), np.float32)}, str(foreign))
    with pytest.raises(ValueError, match="not an mlpcore checkpoint"):
        mc.load(foreign)
    with pytest.raises(FileNotFoundError):
        mc.load(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="model"):
        mc.save("not a model", path)


def test_load_state_into_plain_safetensors(tmp_path):
    """Weights written by another tool under the PyTorch names load into a model."""
    from safetensors.numpy import save_file

    src = _mlp(seed=3)
    p = tmp_path / "plain.safetensors"
    save_file({n: np.array(q.data) for n, q in src.named_parameters()}, str(p))
    dst = mc.load_state_into(_mlp(seed=4), p)
    np.testing.assert_array_equal(dst[0].weight.data, src[0].weight.data)


# ---------------------------------------------------------------------------------------------
# PyTorch interop
# ---------------------------------------------------------------------------------------------

def test_from_torch_matches_outputs():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)
    tm = tnn.Sequential(tnn.Linear(5, 16), tnn.ReLU(), tnn.Linear(16, 16), tnn.LeakyReLU(0.1), tnn.Dropout(0.3),
                        tnn.Linear(16, 12), tnn.Sigmoid(), tnn.Linear(12, 12), tnn.Tanh(), tnn.Linear(12, 10),
                        tnn.ELU(0.5), tnn.Linear(10, 10), tnn.GELU(), tnn.Linear(10, 8), tnn.SiLU(),
                        tnn.Identity(), tnn.Linear(8, 4), tnn.Softmax(dim=-1)).eval()
    m = mc.from_torch(tm)
    assert not m.training and isinstance(m[4], mc.Dropout) and m[4].p == pytest.approx(0.3)
    x = _x(32, 5)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m(x), ref, rtol=0, atol=1e-6)


def test_to_torch_matches_outputs():
    torch = pytest.importorskip("torch")
    model = mc.Sequential(mc.Linear(5, 16, seed=0), mc.ReLU(), mc.Linear(16, 12, seed=1), mc.GELU(),
                          mc.Linear(12, 8, seed=2), mc.ELU(0.3), mc.Dropout(0.1, seed=0), mc.Linear(8, 8, seed=3),
                          mc.SiLU(), mc.Linear(8, 4, seed=4), mc.LeakyReLU(0.05), mc.Softmax()).eval()
    tm = model.to_torch()
    assert isinstance(tm, torch.nn.Sequential) and not tm.training
    x = _x(32, 5)
    with torch.no_grad():
        out = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, model(x), rtol=0, atol=1e-6)
    # float64 keeps its dtype; the copy is independent of the mlpcore weights
    m64 = _mlp(dtype=np.float64)
    t64 = mc.to_torch(m64)
    assert t64[0].weight.dtype == torch.float64
    m64[0].weight.data[...] = 0
    assert float(t64[0].weight.detach().abs().sum()) > 0


def test_torch_round_trip_and_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    path = tmp_path / "t.safetensors"
    mc.save(mc.from_torch(tm), path)
    back = mc.load(path).to_torch()
    x = torch.from_numpy(_x())
    with torch.no_grad():
        np.testing.assert_array_equal(back(x).numpy(), tm(x).numpy())


def test_interop_unsupported_layers():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="Conv1d"):
        mc.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Conv1d(1, 1, 1)))
    with pytest.raises(TypeError, match="approximate"):
        mc.from_torch(torch.nn.GELU(approximate="tanh"))
    with pytest.raises(TypeError, match="Linear"):
        mc.from_torch(torch.nn.Linear(3, 3).half())
    with pytest.raises(TypeError, match="Maxout"):
        mc.Sequential(mc.Maxout(4, 2)).to_torch()
    with pytest.raises(TypeError, match="Residual"):
        mc.to_torch(mc.Residual(mc.Linear(3, 3)))


def test_tied_to_a_later_layer_is_weights_only(tmp_path):
    """A TiedLinear placed before its source cannot be rebuilt in order: the file says why."""
    dec = mc.Linear(4, 6, seed=0)
    model = mc.Sequential(mc.TiedLinear(dec, transpose=True), mc.ReLU(), dec)
    path = tmp_path / "t.safetensors"
    mc.save(model, path)
    with pytest.raises(ValueError, match="TiedLinear whose source"):
        mc.load(path)


def test_saved_file_has_ordinary_permissions(tmp_path):
    """The temp file behind the atomic write is 0600; the checkpoint must not be."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    path = tmp_path / "m.safetensors"
    mc.save(_mlp(), path)
    assert (path.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)
    os.chmod(path, 0o640)
    mc.save(_mlp(), path)  # replacing keeps the existing mode
    assert (path.stat().st_mode & 0o777) == 0o640


def test_shared_module_is_refused_at_construction():
    """A module object used twice cannot be built any more (its saved inputs would be
    overwritten; see nn/test_module_reuse.py), so the former "shared module saves weights only" case
    is now a construction error; tied weights go through TiedLinear."""
    shared = mc.Linear(4, 4, seed=0)
    with pytest.raises(ValueError, match="same Linear object"):
        mc.Sequential(shared, mc.Tanh(), shared)
