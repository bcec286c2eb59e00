"""Every loss and parameter setting (tests/loss_cases.py) with sample weights on the GPU against the
CPU (the oracle): shuffled weighted epochs, a single weighted step (staged weights), weighted
evaluation and an all-zero-weight batch, from the same initial parameters, float32 and float64.
Skips cleanly without a usable GPU or a CUDA build; the kernels themselves are compared one by
one in cpp/tests/test_cuda_backend.cpp."""

import loss_cases as lc
import mlpcore as mc
import numpy as np
import pytest
from mlpcore import _core

gpu = pytest.mark.skipif(not mc.cuda_available(),
                         reason="no usable CUDA GPU / CUDA build: " + _core.cuda_unavailable_reason())
N_IN, N_OUT = 6, 4


def build(case, dtype):
    layers = [mc.Linear(N_IN, 32, seed=1, dtype=dtype), mc.Tanh(), mc.Linear(32, N_OUT, seed=2, dtype=dtype)]
    if case.pred == "positive":
        layers.append(mc.Sigmoid())
    return mc.Sequential(*layers)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", lc.NAMES)
def test_weighted_training_matches_cpu(name, dtype):
    case = lc.CASES[name]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    rng = np.random.default_rng(0)
    n = 150
    X = rng.standard_normal((n, N_IN)).astype(dtype)
    Y = lc.make_target(case, rng, n, N_OUT, dtype)
    w = rng.uniform(0.0, 2.0, n).astype(dtype)
    w[::7] = 0.0
    cpu, dev = build(case, dtype), build(case, dtype)
    dev.to("cuda")
    loss = case.make(N_OUT)
    oc, og = mc.SGD(cpu.parameters(), lr=0.05, momentum=0.9), mc.SGD(dev.parameters(), lr=0.05, momentum=0.9)
    nc, ng = cpu.compiled(), dev.compiled()
    for epoch in range(2):
        rc = nc.train_epoch(oc._core, loss.spec, X, Y, 32, True, 11, epoch, sample_weight=w)
        rg = ng.train_epoch(og._core, loss.spec, X, Y, 32, True, 11, epoch, sample_weight=w)
        assert abs(rg.loss - rc.loss) <= tol * abs(rc.loss), (epoch, rc.loss, rg.loss)
    vc = nc.train_step(oc._core, loss.spec, X[:40], Y[:40], sample_weight=w[:40])
    vg = ng.train_step(og._core, loss.spec, X[:40], Y[:40], sample_weight=w[:40])
    assert abs(vg - vc) <= tol * abs(vc)
    for p, q in zip(cpu.parameters(), dev.parameters()):
        assert rel(q.data, p.data) <= tol * 10
    ec, eg = nc.evaluate(loss.spec, X, Y, 64, sample_weight=w)[0], ng.evaluate(loss.spec, X, Y, 64, sample_weight=w)[0]
    assert abs(eg - ec) <= tol * abs(ec)
    zeros = np.zeros(40, dtype=dtype)
    assert ng.train_step(og._core, loss.spec, X[:40], Y[:40], sample_weight=zeros) == 0.0
    assert all(np.all(q.grad == 0) for q in dev.parameters())
