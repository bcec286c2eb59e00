"""mlpcore.sklearn.MLPClassifier vs sklearn.neural_network.MLPClassifier on digits.

Same network (hidden_layer_sizes), solver, learning rate, batch size and number of epochs
(tol=0 and n_iter_no_change=max_iter, so both run exactly --epochs epochs), the same 80/20
stratified split, standardised features, the same thread count for both (threadpoolctl pins
the BLAS of numpy and of mlpcore; mlpcore's n_threads sets it too). Each seed is one
random_state for both libraries; the two are run interleaved, seed by seed, so that machine
noise hits both alike. Reports per library the median test accuracy and median fit time over
the seeds, the accuracy difference in points and the fit-time ratio, for each network in
--hidden (comma-separated layer widths; default: scikit-learn's default (100,) and two smaller ones).

Two clocks: wall time, and the process's CPU time. On a shared machine (other jobs preempting
this one) wall time mostly measures the neighbours; with 1 thread the CPU time is the work done.

    python bench/sklearn_digits.py                       # 1 thread, 7 seeds, 100 epochs, adam
    python bench/sklearn_digits.py --threads 2 --solver sgd --epochs 50 --hidden 100 100,100

Needs the bench extra (scikit-learn, threadpoolctl). Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import mlpcore as mc
from mlpcore.sklearn import MLPClassifier as McMLPClassifier
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


def fit_and_score(cls, params: dict, data: tuple) -> tuple[float, float, float]:
    """(fit wall seconds, fit CPU seconds, test accuracy) of one fit."""
    Xtr, Xte, ytr, yte = data
    est = cls(**params)
    t0, c0 = time.perf_counter(), time.process_time()
    est.fit(Xtr, ytr)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert est.n_iter_ == params["max_iter"], (cls.__module__, est.n_iter_)
    return wall, cpu, float(est.score(Xte, yte))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--solver", choices=["adam", "sgd"], default="adam")
    ap.add_argument(
        "--hidden",
        nargs="+",
        default=["100", "32", "16"],
        help="networks to compare, each comma-separated hidden widths (e.g. 100 or 100,50)",
    )
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument(
        "--lr", type=float, default=None, help="learning_rate_init (default: 1e-3 adam, 1e-2 sgd)"
    )
    args = ap.parse_args()

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    data = (scaler.transform(Xtr), scaler.transform(Xte), ytr, yte)
    lr = args.lr if args.lr is not None else (1e-3 if args.solver == "adam" else 1e-2)
    print(
        f"digits: {len(ytr)} train / {len(yte)} test rows, 64 features, 10 classes; solver={args.solver} lr={lr} "
        f"batch={args.batch_size} epochs={args.epochs}; threads={args.threads}; seeds={args.seeds}"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {mc.blas_info()}")
    print(
        f"{'hidden':<10}{'library':<14}{'test acc % median':>18}{'min..max':>14}{'fit s wall':>12}"
        f"{'fit s CPU':>11}{'ms/epoch CPU':>14}"
    )
    warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is reached on purpose
    summary = []
    for spec in args.hidden:
        hidden = tuple(int(h) for h in spec.split(","))
        common = {
            "hidden_layer_sizes": hidden,
            "solver": args.solver,
            "learning_rate_init": lr,
            "batch_size": args.batch_size,
            "max_iter": args.epochs,
            "tol": 0.0,
            "n_iter_no_change": args.epochs,
        }
        runs = {"mlpcore": [], "scikit-learn": []}
        with threadpool_limits(limits=args.threads, user_api="blas"):
            mc.set_num_threads(args.threads)
            fit_and_score(McMLPClassifier, {**common, "max_iter": 2, "n_iter_no_change": 2}, data)  # warm-up
            for seed in range(args.seeds):
                runs["mlpcore"].append(
                    fit_and_score(
                        McMLPClassifier, {**common, "random_state": seed, "n_threads": args.threads}, data
                    )
                )
                runs["scikit-learn"].append(
                    fit_and_score(SkMLPClassifier, {**common, "random_state": seed}, data)
                )
        med = {}
        for name, rs in runs.items():
            wall, cpu, acc = ([r[i] for r in rs] for i in range(3))
            acc = [100 * a for a in acc]
            med[name] = (statistics.median(acc), statistics.median(wall), statistics.median(cpu))
            print(
                f"{hidden!s:<10}{name:<14}{med[name][0]:>18.2f}{f'{min(acc):.2f}..{max(acc):.2f}':>14}"
                f"{med[name][1]:>12.4f}{med[name][2]:>11.4f}{1000 * med[name][2] / args.epochs:>14.3f}"
            )
        summary.append(
            (
                hidden,
                med["mlpcore"][0] - med["scikit-learn"][0],
                med["scikit-learn"][1] / med["mlpcore"][1],
                med["scikit-learn"][2] / med["mlpcore"][2],
            )
        )
    print("\nhidden    accuracy mlpcore - scikit-learn   fit speed-up wall   fit speed-up CPU")
    for hidden, diff, r_wall, r_cpu in summary:
        print(f"{hidden!s:<10}{diff:>+24.2f} pt{r_wall:>19.1f}x{r_cpu:>18.1f}x")


if __name__ == "__main__":
    main()
