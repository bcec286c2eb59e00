"""Time-to-accuracy on scikit-learn's digits: `mlpcore train`'s default
against scikit-learn's MLPClassifier(256, 256) and a PyTorch 64-256-256-10, on the same 80/20
split (seed 0, stratified), at the same thread count.

    python bench/digits_train.py [--threads 1] [--repeats 3]

- mlpcore: the `mlpcore train` default (64-256-256-10 ReLU, AdamW lr 2e-3 weight decay 0.01,
  30 epochs, batch 64, pixels / 16), through mlpcore.Trainer (compiled path).
- PyTorch: the same network, optimizer, epochs and batch size, an eager loop over shuffled
  mini-batches (the usual hand-written training loop), with PyTorch's default init.
- scikit-learn: MLPClassifier(hidden_layer_sizes=(256, 256)) with its defaults (Adam lr 1e-3,
  batch 200, up to 200 epochs with its own convergence stop), random_state=0.

Prints the median training time (model construction excluded, data already in memory) as wall
time and as this process's CPU time, and the test accuracy, per library. On a shared machine
wall time also measures the neighbours; with 1 thread the CPU time is the work done.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--libraries", default="mlpcore,torch,sklearn", help="comma-separated subset to run")
    args = ap.parse_args(argv)
    libs = set(args.libraries.split(","))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import mlpcore as mc
    from mlpcore.datasets import load_digits, train_test_split

    X, y = load_digits(scale="unit")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, seed=0, stratify=y)
    rows = []

    # ---- mlpcore ----
    mc.set_num_threads(args.threads)
    times, cpus, accs = [], [], []
    for _ in range(args.repeats if "mlpcore" in libs else 0):
        model = mc.Sequential(mc.Linear(64, 256, seed=0), mc.ReLU(), mc.Linear(256, 256, seed=1), mc.ReLU(),
                              mc.Linear(256, 10, init="xavier_uniform", seed=2))
        opt = mc.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
        trainer = mc.Trainer(model, loss=mc.CrossEntropyLoss(), optimizer=opt, batch_size=64)
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.fit(X_tr, y_tr, epochs=args.epochs, seed=0, verbose=0)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        accs.append(trainer.evaluate(X_te, y_te)["accuracy"])
    if times:
        rows.append(("mlpcore (train default)", statistics.median(times), statistics.median(cpus), accs[-1],
                     args.epochs))

    # ---- PyTorch ----
    try:
        import torch
    except ImportError:
        torch = None
    torch = torch if "torch" in libs else None
    if torch is not None:
        torch.set_num_threads(args.threads)
        Xt, yt = torch.from_numpy(X_tr), torch.from_numpy(y_tr)
        times, cpus, accs = [], [], []
        for _ in range(args.repeats):
            torch.manual_seed(0)
            tm = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                     torch.nn.ReLU(), torch.nn.Linear(256, 10))
            topt = torch.optim.AdamW(tm.parameters(), lr=2e-3, weight_decay=0.01)
            lossf = torch.nn.CrossEntropyLoss()
            g = torch.Generator().manual_seed(0)
            t0, c0 = time.perf_counter(), time.process_time()
            for _e in range(args.epochs):
                perm = torch.randperm(len(Xt), generator=g)
                for i in range(0, len(Xt), 64):
                    idx = perm[i:i + 64]
                    topt.zero_grad()
                    lossf(tm(Xt[idx]), yt[idx]).backward()
                    topt.step()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            with torch.no_grad():
                accs.append(float((tm(torch.from_numpy(X_te)).argmax(1).numpy() == y_te).mean()))
        rows.append((f"PyTorch {torch.__version__.split('+')[0]} eager", statistics.median(times), statistics.median(cpus),
                     accs[-1],
                     args.epochs))

    # ---- scikit-learn ----
    try:
        import warnings

        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits
    except ImportError:
        sklearn = None
    if sklearn is not None and "sklearn" in libs:
        times, cpus, accs = [], [], []
        for _ in range(args.repeats):
            clf = MLPClassifier(hidden_layer_sizes=(256, 256), random_state=0)
            with threadpool_limits(args.threads), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                t0, c0 = time.perf_counter(), time.process_time()
                clf.fit(X_tr, y_tr)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            accs.append(float((clf.predict(X_te) == y_te).mean()))
        rows.append((f"scikit-learn {sklearn.__version__} MLPClassifier(256,256)", statistics.median(times),
                     statistics.median(cpus), accs[-1],
                     clf.n_iter_))

    print(f"digits, 80/20 split (seed 0): {len(y_tr)} train / {len(y_te)} test rows, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"| {'library':<46} | wall s | CPU s | test accuracy | epochs |")
    print(f"|{'-' * 48}|--------|-------|---------------|--------|")
    for name, t, c, acc, ep in rows:
        print(f"| {name:<46} | {t:6.2f} | {c:5.2f} | {acc:13.4f} | {ep:6d} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
