"""Memory safety of parameter views.

``param.data`` / ``param.grad`` are zero-copy numpy views of the C++ arena; the view's ``base``
holds the arena (a shared_ptr), so the memory lives as long as any view does. Deleting the model,
its optimizer, its compiled network and its Trainer while a view survives must leave the view
readable and writable: no use-after-free. Each scenario runs in a subprocess so that a crash is a
failed test, and churns the allocator between the delete and the access so that freed memory
would be reused. (In CI's sanitizer run the subprocess inherits AddressSanitizer, which reports a
use-after-free even when it would not crash.)
"""

import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import gc
import numpy as np
import mlpcore as mc

def churn():
    # allocate and free plenty of same-sized blocks: a freed arena would be handed out again
    keep = [mc.Sequential(mc.Linear(64, 128, seed=i), mc.ReLU(), mc.Linear(128, 10, seed=i))
            for i in range(20)]
    junk = [np.full(64 * 128 + 128 * 10 + 64, 9.0, np.float32) for _ in range(50)]
    for m in keep:
        for p in m.parameters():
            p.data[...] = -5.0
    return keep, junk

def model_and_training():
    model = mc.Sequential(mc.Linear(64, 128, seed=0), mc.ReLU(), mc.Linear(128, 10, seed=1))
    opt = mc.Adam(model.parameters(), lr=1e-3)
    net = model.compiled()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((256, 64)).astype(np.float32), rng.integers(0, 10, 256)
    net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 32, True, 0)
    return model, opt, net, X, y
"""

SCENARIOS = {
    "views outlive model, optimizer and network": """
        model, opt, net, X, y = model_and_training()
        w, g, b = model[0].weight.data, model[0].weight.grad, model[2].bias.data
        wt, part = w.T, w[::3, 7:]          # views of views keep the owner alive too
        want_w, want_g, want_b = w.copy(), g.copy(), b.copy()
        del model, opt, net
        gc.collect()
        keep = churn()
        assert np.array_equal(w, want_w) and np.array_equal(g, want_g) and np.array_equal(b, want_b)
        assert np.array_equal(wt, want_w.T) and np.array_equal(part, want_w[::3, 7:])
        w[...] = 1.5; g[...] = -2.0; b[...] = 3.0
        assert w.sum() == 1.5 * w.size and g.sum() == -2.0 * g.size and b.sum() == 30.0
        assert part.sum() == 1.5 * part.size
    """,
    "network outlives model and optimizer": """
        model, opt, net, X, y = model_and_training()
        want = net.predict(X)
        del model, opt
        gc.collect()
        keep = churn()
        assert np.array_equal(net.predict(X), want)
    """,
    "optimizer outlives the model": """
        model, opt, net, X, y = model_and_training()
        w = model[0].weight.data
        del model, net
        gc.collect()
        keep = churn()
        before = w.copy()
        opt.step()  # its own reference to the arena: still valid memory
        assert np.all(np.isfinite(w)) and w.shape == before.shape
    """,
    "views of an arena kept by Sequential and by to()": """
        lin = mc.Linear(64, 128, seed=0)
        old = lin.weight.data               # view of the Linear's own arena (now pinned)
        want = old.copy()
        model = mc.Sequential(lin, mc.ReLU(), mc.Linear(128, 4, seed=1))  # gathers only the free layer
        model.to("cpu")
        del lin, model
        gc.collect()
        keep = churn()
        assert np.array_equal(old, want)    # the old arena lives on in the view
        old[...] = 4.0
        assert old.sum() == 4.0 * old.size
    """,
    "trainer, checkpoint and predict outputs": """
        model, opt, net, X, y = model_and_training()
        tr = mc.Trainer(model, optimizer=opt, batch_size=32)
        tr.fit(X, y, epochs=1, verbose=0)
        out = tr.predict(X)
        w = model[2].weight.data
        want_out, want_w = out.copy(), w.copy()
        del tr, model, opt, net
        gc.collect()
        keep = churn()
        assert np.array_equal(out, want_out) and np.array_equal(w, want_w)
        out[...] = 0.0; w[...] = 0.0
    """,
    "a view deleted last frees the arena cleanly": """
        for i in range(200):
            model = mc.Sequential(mc.Linear(64, 128, seed=i), mc.ReLU(), mc.Linear(128, 10, seed=i))
            v = model[0].weight.grad
            del model
            v[...] = float(i)
            del v
        gc.collect()
    """,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_views_after_the_model_is_gone(name):
    code = PRELUDE + textwrap.dedent(SCENARIOS[name]) + "\nprint('OK')\n"
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip().endswith("OK")
