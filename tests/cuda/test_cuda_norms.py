"""LayerNorm, BatchNorm1d, gradient clipping, freezing and running metrics on CUDA: the CPU is
the oracle (max|cuda - cpu| / max|cpu| <= 1e-5, float32). BatchNorm's running statistics move
with ``.to(device)``. Tests marked ``gpu`` skip cleanly without a usable GPU / CUDA build."""

import mlpcore as mc
import numpy as np
import pytest
from mlpcore import _core

HAS_CUDA = mc.cuda_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="no usable CUDA GPU / CUDA build: " + _core.cuda_unavailable_reason())
TOL = 1e-5


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _model(seed=0, **bn):
    return mc.Sequential(mc.Linear(20, 64, bias=False, seed=seed), mc.BatchNorm1d(64, **bn), mc.ReLU(),
                         mc.Linear(64, 64, seed=seed + 1), mc.LayerNorm(64), mc.GELU(),
                         mc.Linear(64, 64, seed=seed + 2), mc.BatchNorm1d(64, momentum=None), mc.Tanh(),
                         mc.Linear(64, 5, seed=seed + 3))


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, 20)) * 2 + 0.5).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0.5).astype(int)


def _assert_same(cpu, cuda, where):
    got, want = cuda.state_dict(), cpu.state_dict()
    for k in want:
        if k.endswith("num_batches_tracked"):
            assert int(got[k]) == int(want[k]), f"{where} {k}"
        else:
            assert _rel(got[k], want[k]) <= TOL, f"{where} {k}: {_rel(got[k], want[k]):.2e}"


@gpu
@pytest.mark.parametrize("bn", [{}, {"affine": False}, {"track_running_stats": False}])
def test_training_with_norms_matches_the_cpu(bn):
    X, y = _data()
    cpu, cuda = _model(**bn), _model(**bn).to("cuda")
    for model in (cpu, cuda):
        opt = mc.SGD(model.parameters(), lr=0.05, momentum=0.9)
        mc.Trainer(model, optimizer=opt, batch_size=64, clip_grad_norm=1.0).fit(X, y, epochs=3, seed=2,
                                                                                verbose=0)
    _assert_same(cpu, cuda.to("cpu"), f"fit {bn}")
    cuda.to("cuda")
    cpu.eval()
    cuda.eval()
    assert _rel(cuda(X), cpu(X)) <= TOL
    with mc.no_grad():
        assert _rel(cuda(X[:1]), cpu(X[:1])) <= TOL  # one row in eval mode: running statistics


@gpu
def test_running_statistics_follow_the_model_to_the_device_and_back():
    X, y = _data(64)
    model = _model()
    mc.Trainer(model, batch_size=16).fit(X, y, epochs=1, verbose=0)
    before = model.state_dict()
    model.to("cuda")
    assert model[1]._stats.device == "cuda" and model.device == "cuda"
    np.testing.assert_array_equal(model.state_dict()["1.running_var"], before["1.running_var"])
    model.to("cpu")
    for k, v in before.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)


@gpu
def test_clip_grad_norm_and_frozen_parameters_on_cuda():
    X, y = _data(128)
    cpu, cuda = _model(), _model().to("cuda")
    for model in (cpu, cuda):
        model[0].weight.requires_grad = False
        model[4].bias.requires_grad = False
        opt = mc.Adam(model.parameters(), lr=0.01)
        mc.Trainer(model, optimizer=opt, batch_size=32, clip_grad_norm=0.2,
                   metrics=["f1", "roc_auc"]).fit(X, y, epochs=2, verbose=0)
        grads_norm = mc.clip_grad_norm_(model.parameters(), 0.1)
        assert np.isfinite(grads_norm)
    _assert_same(cpu, cuda.to("cpu"), "frozen + clipped")


@gpu
def test_running_metrics_on_cuda_equal_the_cpu():
    X, y = _data(200)
    hist = []
    for device in ("cpu", "cuda"):
        model = _model().to(device)
        trainer = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.05), batch_size=50,
                             metrics=["accuracy", "f1", "roc_auc"])
        hist.append(trainer.fit(X, y, epochs=2, validation_split=0.2, verbose=0).history)
    for k in hist[0]:
        np.testing.assert_allclose(hist[1][k], hist[0][k], rtol=1e-4, atol=1e-4, err_msg=k)


@gpu
def test_module_path_of_an_op_layer_on_cuda_is_a_clear_error():
    ln = mc.LayerNorm(4).to("cuda")
    with pytest.raises(RuntimeError, match="module-by-module path runs on the CPU"):
        ln.forward(np.ones((2, 4), np.float32))
