"""Cost of the model-side entry points, side by side with their peers (1 thread, medians).

    python bench/entry_points.py [--repeats 7] [--no-torch]

1. Eval-mode ``model(x)``, batch 1, [784, 256, 256, 10] float32, against the compiled network's
   ``predict`` (the floor: one C++ call), ``model(x)`` under ``mc.no_grad()`` and NumPy's three
   matmuls (x @ W.T + b, ReLU) on the same weights.
2. The PyTorch-style manual loop (zero_grad, forward, loss, backward, step), [2, 16, 16, 2] batch 64
   cross-entropy, SGD with momentum, against the same loop in PyTorch eager.
3. Python -> C++ crossings per step of that loop (tests/nn/test_crossings.py asserts them).

Peers run interleaved in one process (this machine's cores are shared and noisy): each round
times every contender for a few milliseconds, and the table reports the median per call and the
ratios the design budgets name (DESIGN.md: eval-mode model(x) <= 1.2x compiled predict and
<= 0.6x NumPy; the manual loop >= 10x faster than PyTorch eager).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import mlpcore as mc


def per_call(fn, min_time: float = 0.005) -> float:
    """Seconds per call of ``fn``, timing enough calls to fill ``min_time``."""
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt >= min_time:
            return dt / n
        n = max(n * 2, int(n * min_time / max(dt, 1e-9)))


def side_by_side(contenders: dict, repeats: int) -> dict:
    """Median seconds per call of each contender over ``repeats`` x 10 short interleaved rounds
    (short rounds, so that load from elsewhere hits every contender alike)."""
    times = {k: [] for k in contenders}
    for fn in contenders.values():  # warm up (network workspaces, torch's first-call costs)
        for _ in range(50):
            fn()
    for _ in range(repeats * 10):
        for k, fn in contenders.items():
            times[k].append(per_call(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def eval_contenders() -> dict:
    sizes = [784, 256, 256, 10]
    model = mc.Sequential(mc.Linear(784, 256, seed=0), mc.ReLU(), mc.Linear(256, 256, seed=1), mc.ReLU(),
                          mc.Linear(256, 10, seed=2)).eval()
    x = np.random.default_rng(0).standard_normal((1, sizes[0])).astype(np.float32)
    net = model.compiled()
    ws = [(m.weight.data.copy(), m.bias.data.copy()) for m in model if isinstance(m, mc.Linear)]

    def numpy_mlp():
        h = x
        for i, (w, b) in enumerate(ws):
            h = h @ w.T + b
            if i < len(ws) - 1:
                h = np.maximum(h, 0.0)
        return h

    def no_grad_call():
        with mc.no_grad():
            return model(x)

    np.testing.assert_allclose(model(x), numpy_mlp(), rtol=1e-4, atol=1e-5)
    return {"compiled predict": lambda: net.predict(x, 1024), "model(x) eval": lambda: model(x),
            "model(x) no_grad": no_grad_call, "numpy 3 matmuls": numpy_mlp}


def loop_contenders(with_torch: bool) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    model = mc.Sequential(mc.Linear(2, 16, seed=0), mc.ReLU(), mc.Linear(16, 16, seed=1), mc.ReLU(),
                          mc.Linear(16, 2, seed=2))
    opt = mc.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = mc.CrossEntropyLoss()

    def mc_step():
        opt.zero_grad()
        value = loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
        return value

    out = {"mlpcore loop": mc_step}
    if with_torch:
        import torch

        torch.set_num_threads(1)
        tnn = torch.nn
        tm = tnn.Sequential(tnn.Linear(2, 16), tnn.ReLU(), tnn.Linear(16, 16), tnn.ReLU(), tnn.Linear(16, 2))
        topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        tloss = torch.nn.CrossEntropyLoss()

        def torch_step():
            topt.zero_grad()
            value = tloss(tm(tx), ty)
            value.backward()
            topt.step()
            return value

        out["torch eager loop"] = torch_step
    return out, mc_step


def count_crossings(fn) -> int:
    """Python -> C++ calls into mlpcore._core made by ``fn()`` (functions, methods, constructors
    and property reads / writes); see tests/nn/test_crossings.py."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from helpers import CrossingCounter

    with CrossingCounter() as c:
        fn()
    return c.count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    mc.set_num_threads(1)
    print(f"mlpcore {mc.__version__}, {mc.blas_info()}, 1 thread, median of {args.repeats * 10} rounds\n")

    t = side_by_side(eval_contenders(), args.repeats)
    print("eval-mode inference, batch 1, [784, 256, 256, 10] float32")
    for k, v in t.items():
        print(f"  {k:<20} {v * 1e6:8.2f} us")
    call = t["model(x) eval"]
    print(f"  model(x) / compiled predict  = {call / t['compiled predict']:.2f}  (budget <= 1.2)")
    print(f"  model(x) / numpy             = {call / t['numpy 3 matmuls']:.2f}  (budget <= 0.6)")
    print(f"  no_grad model(x) / predict   = {t['model(x) no_grad'] / t['compiled predict']:.2f}\n")

    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            with_torch = False
    contenders, step = loop_contenders(with_torch)
    t = side_by_side(contenders, args.repeats)
    print("PyTorch-style manual loop, [2, 16, 16, 2] batch 64, cross-entropy, SGD momentum")
    for k, v in t.items():
        print(f"  {k:<20} {v * 1e6:8.2f} us/step")
    if "torch eager loop" in t:
        speedup = t["torch eager loop"] / t["mlpcore loop"]
        print(f"  torch eager / mlpcore        = {speedup:.1f}x  (budget >= 10)")
    print(f"  Python -> C++ crossings per step: {count_crossings(step)}  (budget <= 15)")


if __name__ == "__main__":
    main()
