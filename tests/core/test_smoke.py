"""Smoke test: the package imports, a model trains through both paths."""

import numpy as np

import mlpcore as mc


def test_import_and_train_both_paths():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = mc.Sequential(mc.Linear(4, 16, seed=0), mc.ReLU(), mc.Linear(16, 2, seed=1))
    loss = mc.CrossEntropyLoss()
    opt = mc.SGD(model.parameters(), lr=0.5, momentum=0.9)
    first = None
    for _ in range(20):
        model.zero_grad()
        value = loss(model(x), y)
        first = value if first is None else first
        model.backward(loss.backward())
        opt.step()
    net = model.compiled()
    assert net is not None
    for _ in range(20):
        value = net.train_step(opt._core, mc._core.LossKind.cross_entropy, x, y)
    assert value < first / 2
