"""model.state_dict() / load_state_dict() (an ordered mapping of PyTorch names to numpy copies;
missing, unexpected and mis-shaped entries named; a PyTorch twin loads it; buffers: see
test_norm_layers_state.py), optimizer.state_dict() / load_state_dict() likewise, model.summary(),
and mc.manual_seed (layers without seed= draw from it)."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import _validate

F64 = np.float64


def _mlp(seed=0, dtype=np.float32):
    return mc.Sequential(mc.Linear(5, 8, seed=seed, dtype=dtype), mc.ReLU(), mc.Dropout(0.1, seed=seed),
                         mc.Linear(8, 3, seed=seed + 1, dtype=dtype))


def _x(n=6, f=5, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, f)).astype(dtype)


def test_state_dict_is_ordered_pytorch_names_and_copies():
    model = _mlp()
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert sd["0.weight"].shape == (8, 5) and sd["0.weight"].dtype == np.float32
    sd["0.weight"][...] = 7.0
    assert not np.any(model[0].weight.data == 7.0)  # copies: the model is untouched


def test_load_state_dict_round_trip():
    a, b = _mlp(0), _mlp(10)
    out = b.load_state_dict(a.state_dict())
    assert out.missing_keys == [] and out.unexpected_keys == []
    x = _x()
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_names_every_problem_and_writes_nothing():
    model = _mlp()
    before = model.state_dict()
    sd = dict(model.state_dict())
    del sd["3.bias"]
    sd["9.weight"] = np.zeros(3)
    sd["0.weight"] = np.zeros((5, 8))
    want = r"missing \['3.bias'\], unexpected \['9.weight'\].*'0.weight': expected shape \(8, 5\), got \(5, 8\)"
    with pytest.raises(ValueError, match=want):
        model.load_state_dict(sd)
    with pytest.raises(ValueError, match="'0.weight': expected shape"):
        model.load_state_dict(sd, strict=False)  # a wrong shape is never ignored
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    sd["0.weight"] = np.ones((8, 5))
    out = model.load_state_dict(sd, strict=False)
    assert out.missing_keys == ["3.bias"] and out.unexpected_keys == ["9.weight"]
    np.testing.assert_array_equal(model[0].weight.data, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        model.load_state_dict({**model.state_dict(), "0.bias": np.full(8, np.nan)})
    with pytest.raises(TypeError, match="mapping"):
        model.load_state_dict([1, 2])


def test_a_pytorch_twin_loads_it_and_back():
    torch = pytest.importorskip("torch")
    model = _mlp(dtype=F64).eval()
    tnn = torch.nn
    twin = tnn.Sequential(tnn.Linear(5, 8, dtype=torch.float64), tnn.ReLU(), tnn.Dropout(0.1),
                          tnn.Linear(8, 3, dtype=torch.float64)).eval()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()}, strict=True)
    x = _x(dtype=F64)
    with torch.no_grad():
        np.testing.assert_allclose(twin(torch.from_numpy(x)).numpy(), model(x), rtol=1e-12, atol=1e-14)
    other = _mlp(7, dtype=F64).eval()
    other.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    np.testing.assert_array_equal(other(x), model(x))


def test_optimizer_state_dict_round_trip():
    model = _mlp()
    opt = mc.Adam(model.parameters(), lr=0.01)
    model(_x())
    model.backward(np.ones((6, 3)))
    opt.step()
    sd = opt.state_dict()
    opt2 = mc.Adam(model.parameters(), lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.lr == pytest.approx(0.01) and opt2.step_count == 1
    np.testing.assert_array_equal(opt2.state_dict()["state"], sd["state"])


def test_float32_state_loads_into_a_pytorch_twin_with_from_numpy():
    torch = pytest.importorskip("torch")
    model = _mlp()
    sd = model.state_dict()
    assert type(sd).__name__ == "OrderedDict" and all(type(v) is np.ndarray for v in sd.values())
    twin = mc.to_torch(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.zero_()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    assert [k for k in twin.state_dict()] == list(sd)
    for k, v in twin.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), sd[k])


def test_optimizer_load_state_dict_names_every_problem_and_changes_nothing():
    model = _mlp()
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(_x())
    model.backward(np.ones((6, 3), np.float32))
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"type", "hyper", "step", "state"} and sd["state"].shape == (opt._core.state_numel,)
    good = {**sd, "state": sd["state"].copy()}
    bad = {"type": "SGD", "hyper": {**sd["hyper"], "lr": 0.5, "bogus": 1}, "state": sd["state"][:-1],
           "extra": 0}
    with pytest.raises(ValueError) as e:
        opt.load_state_dict(bad)
    msg = str(e.value)
    n = sd["state"].size
    for part in ("missing ['step'], unexpected ['extra']", "unknown hyper-parameter 'bogus'",
                 f"expected a float array of shape ({n},)", f"shape ({n - 1},)"):
        assert part in msg, (part, msg)
    assert opt.lr == 0.1  # nothing was written, not even the valid lr
    with pytest.raises(ValueError, match=r"got float32 of shape \(\d+, 1\)"):
        opt.load_state_dict({**good, "state": good["state"].reshape(-1, 1)})
    with pytest.raises(ValueError, match="step.*non-negative int, got -1"):
        opt.load_state_dict({**good, "step": -1})
    with pytest.raises(ValueError, match="'Adam', not SGD"):
        opt.load_state_dict({**good, "type": "Adam"})
    np.testing.assert_array_equal(opt.state_dict()["state"], sd["state"])
    opt.load_state_dict({**good, "hyper": {"lr": 0.5}})  # a subset of the hyper-parameters is fine
    assert opt.lr == 0.5 and opt.step_count == 1


def test_optimizer_state_dict_checks_the_layout_it_saves_with_frozen_parameters():
    """With a parameter frozen the state dict keeps the layout with nothing frozen; the checks
    expect that layout, and a round trip restores the state."""
    model = _mlp()
    opt = mc.Adam(model.parameters(), lr=0.01)
    model(_x())
    model.backward(np.ones((6, 3), np.float32))
    opt.step()
    model[0].weight.requires_grad = False
    sd = opt.state_dict()
    n = sd["state"].size
    assert n > opt._core.state_numel  # the frozen weight's moments are kept in the saved layout
    opt.load_state_dict({**sd, "state": np.zeros(n, np.float32)})
    assert not np.any(opt.state_dict()["state"])
    opt.load_state_dict(sd)
    np.testing.assert_array_equal(opt.state_dict()["state"], sd["state"])
    live = opt._core.state_numel
    with pytest.raises(ValueError, match=rf"shape \({n},\) .*got float32 of shape \({live},\)"):
        opt.load_state_dict({**sd, "state": np.zeros(live, np.float32)})


def test_summary_lists_layers_shapes_and_counts():
    model = mc.Sequential(mc.Linear(784, 256), mc.ReLU(),
                          mc.Residual(mc.Sequential(mc.Linear(256, 256), mc.Tanh())), mc.Maxout(256, 10, pieces=2))
    text = model.summary()
    lines = text.splitlines()
    assert lines[0].split() == ["path", "layer", "output", "params"]
    row = {ln.split()[0]: ln for ln in lines[2:] if ln and not ln.startswith("-") and ln[0] != "p"}
    assert "Linear(in_features=784, out_features=256, bias=True)" in row["0"] and "(B, 256)" in row["0"]
    assert row["0"].rstrip().endswith("200,960")
    assert "(B, 256)" in row["2"] and "(B, 256)" in row["2.block.0"] and "65,792" in row["2.block.0"]
    assert "Maxout(in_features=256, out_features=10, pieces=2)" in row["3"] and "(B, 10)" in row["3"]
    total = sum(p.numel for p in model.parameters())
    assert lines[-1] == f"parameters: {total:,} in 6 tensors (float32, cpu)"

    class Custom(mc.Module):
        pass

    assert "?" in mc.Sequential(mc.Linear(3, 4), Custom(), mc.ReLU()).summary()  # widths unknown past it


@pytest.fixture
def restore_seed_stream(monkeypatch):
    monkeypatch.setattr(_validate, "_stream", _validate._stream)


def test_manual_seed_makes_seedless_layers_reproducible(restore_seed_stream):
    def build():
        return mc.Sequential(mc.Linear(4, 16), mc.ReLU(), mc.Dropout(0.5), mc.Maxout(16, 3, pieces=2))

    mc.manual_seed(0)
    a = build()
    mc.manual_seed(0)
    b = build()
    c = build()  # the stream moved on
    mc.manual_seed(1)
    d = build()
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert a[2]._state.seed == b[2]._state.seed
    assert not np.array_equal(a[0].weight.data, c[0].weight.data)
    assert not np.array_equal(a[0].weight.data, d[0].weight.data)
    x = _x(8, 4)
    np.testing.assert_array_equal(a(x), b(x))  # the same dropout masks too
    with pytest.raises(ValueError, match="seed"):
        mc.manual_seed(-1)
    with pytest.raises(ValueError, match="seed"):
        mc.manual_seed(None)


def test_manual_seed_then_fit_is_reproducible(restore_seed_stream):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 3, 64)

    def run():
        mc.manual_seed(0)
        model = mc.Sequential(mc.Linear(4, 16), mc.ReLU(), mc.Dropout(0.2), mc.Linear(16, 3))
        mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1, momentum=0.9), batch_size=16).fit(
            X, y, epochs=2, seed=0, verbose=0)
        return [p.data.copy() for p in model.parameters()]

    for p, q in zip(run(), run()):
        np.testing.assert_array_equal(p, q)


def test_manual_seed_then_fit_is_reproducible_across_processes():
    """mc.manual_seed(0); build (layers without seed=, Dropout); fit(seed=0): the same weights in two
    fresh interpreters (no state shared through the test process), and other weights with another seed."""
    import hashlib
    import subprocess
    import sys

    code = (
        "import hashlib, sys\n"
        "import numpy as np, mlpcore as mc\n"
        "mc.set_num_threads(1)\n"
        "mc.manual_seed(int(sys.argv[1]))\n"
        "model = mc.Sequential(mc.Linear(4, 32), mc.ReLU(), mc.Dropout(0.2), mc.Linear(32, 3))\n"
        "rng = np.random.default_rng(0)\n"
        "X, y = rng.standard_normal((96, 4)).astype(np.float32), rng.integers(0, 3, 96)\n"
        "mc.Trainer(model, optimizer=mc.Adam(model.parameters()), batch_size=16).fit(X, y, epochs=3, seed=0, verbose=0)\n"
        "print(hashlib.sha256(b''.join(p.data.tobytes() for p in model.parameters())).hexdigest())\n"
    )

    def run(seed):
        r = subprocess.run([sys.executable, "-c", code, str(seed)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    first = run(0)
    assert len(first) == len(hashlib.sha256().hexdigest())
    assert run(0) == first
    assert run(1) != first
