"""Trainer entry points, side by side: ``train_on_batch`` against one batch inside ``fit``, and
whole ``fit`` epochs, optionally for several builds of mlpcore in one run.

    python bench/trainer_entry.py                                  # this interpreter's mlpcore
    python bench/trainer_entry.py --python /work/main/.venv/bin/python --python .venv/bin/python

Measured at 1 thread (mc.set_num_threads and OPENBLAS_NUM_THREADS), each in a fresh worker
process per round; the rounds alternate between the interpreters so that the noise of a shared
machine hits them alike. Timed on the process's CPU clock (time.process_time: time slices lost
to other processes do not count; one thread, so it is the work done). Reported: medians over
all samples, in microseconds.

- ``fit/batch [2,16,16,2] B64``: ``Trainer.fit`` over 50 batches of 64 rows, per batch;
- ``train_on_batch [2,16,16,2] B64``: one call on a 64-row batch (float32 X, int64 labels);
- ``ratio``: train_on_batch / fit per batch (budget: <= 1.3);
- ``fit/epoch [2,16,16,2] B64`` (3200 rows) and ``fit/epoch [784,256,256,10] B128`` (4096 rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SMALL, BIG = [2, 16, 16, 2], [784, 256, 256, 10]


def _model(mc, sizes, seed=0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(mc.Linear(a, b, seed=seed + i))
        if i < len(sizes) - 2:
            layers.append(mc.ReLU())
    return mc.Sequential(*layers)


def _samples(fn, units: int, n_samples: int, target_s: float) -> list:
    """Microseconds per unit of ``fn`` (which does ``units`` units per call), one value per sample
    of ~target_s seconds."""
    clock = time.process_time
    fn()
    t0 = time.perf_counter()
    fn()
    reps = max(1, int(target_s / max(time.perf_counter() - t0, 1e-7)))
    out = []
    for _ in range(n_samples):
        t0 = clock()
        for _ in range(reps):
            fn()
        out.append((clock() - t0) / (reps * units) * 1e6)
    return out


def worker(n_samples: int, target_s: float) -> dict:
    import numpy as np

    import mlpcore as mc

    mc.set_num_threads(1)
    rng = np.random.default_rng(0)
    res = {}

    def trainer(sizes, bs):
        m = _model(mc, sizes)
        return mc.Trainer(m, optimizer=mc.SGD(m.parameters(), lr=1e-3), batch_size=bs)

    # [2,16,16,2] B64: per batch inside fit, and train_on_batch
    X = rng.normal(size=(64 * 50, 2)).astype(np.float32)
    y = rng.integers(0, 2, len(X))
    tr = trainer(SMALL, 64)
    res["fit/batch [2,16,16,2] B64"] = _samples(lambda: tr.fit(X, y, epochs=4, verbose=0), 4 * 50, n_samples,
                                                target_s)
    xb, yb = X[:64].copy(), y[:64].copy()
    res["train_on_batch [2,16,16,2] B64"] = _samples(lambda: tr.train_on_batch(xb, yb), 1, n_samples, target_s)
    res["fit/epoch [2,16,16,2] B64"] = [v * 50 for v in res["fit/batch [2,16,16,2] B64"]]

    # [784,256,256,10] B128: fit epochs
    Xb = rng.normal(size=(4096, 784)).astype(np.float32)
    yb = rng.integers(0, 10, len(Xb))
    tb = trainer(BIG, 128)
    res["fit/epoch [784,256,256,10] B128"] = _samples(lambda: tb.fit(Xb, yb, epochs=1, verbose=0), 1, n_samples,
                                                      target_s)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", action="append", help="interpreter whose mlpcore to measure (repeatable; "
                                                     "default: this one)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--samples", type=int, default=5, help="samples per measurement per round")
    p.add_argument("--target", type=float, default=0.1, help="seconds per sample")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.samples, args.target)))
        return 0
    pythons = args.python or [sys.executable]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    data: dict = {py: {} for py in pythons}
    for r in range(args.rounds):
        order = pythons[r % len(pythons):] + pythons[:r % len(pythons)]
        for py in order:
            out = subprocess.run([py, os.path.abspath(__file__), "--worker", "--samples", str(args.samples),
                                  "--target", str(args.target)], env=env, capture_output=True, text=True,
                                 check=False, cwd=os.path.dirname(os.path.abspath(__file__)))
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            for k, v in json.loads(out.stdout).items():
                data[py].setdefault(k, []).extend(v)
    keys = list(data[pythons[0]])
    med = {py: {k: statistics.median(data[py][k]) for k in keys} for py in pythons}
    w = max(len(k) for k in keys) + 2
    print("medians in microseconds of CPU time, 1 thread" + "".join(f"\n  [{i}] {py}" for i, py in enumerate(pythons)))
    print(f"{'':<{w}}" + "".join(f"{'[' + str(i) + ']':>14}" for i in range(len(pythons)))
          + ("   [last]/[0]" if len(pythons) > 1 else ""))
    for k in keys:
        line = f"{k:<{w}}" + "".join(f"{med[py][k]:>14.2f}" for py in pythons)
        if len(pythons) > 1:
            line += f"   {med[pythons[-1]][k] / med[pythons[0]][k]:>10.3f}"
        print(line)
    for i, py in enumerate(pythons):
        ratio = med[py]["train_on_batch [2,16,16,2] B64"] / med[py]["fit/batch [2,16,16,2] B64"]
        print(f"[{i}] train_on_batch / fit per batch = {ratio:.3f} (budget <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
