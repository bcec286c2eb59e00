"""mlpcore.sklearn.MLPClassifier vs sklearn.neural_network.MLPClassifier on digits.

Same network (hidden_layer_sizes), solver and hyper-parameters, the same 80/20 stratified split,
standardised features in the same dtype (--dtype; digits loads as float64, and both libraries
then train in float64), the same thread count for both (threadpoolctl pins the BLAS of numpy,
scipy and mlpcore; mlpcore's n_threads sets it too). Each seed is one random_state for both
libraries; the two are run interleaved, seed by seed, so that machine noise hits both alike.
Reports per library the median test accuracy and median fit time over the seeds, the accuracy
difference in points and the fit-time ratio, for each network in --hidden (comma-separated layer
widths; default: scikit-learn's default (100,) and two smaller ones).

Stochastic solvers (adam, sgd): tol=0 and n_iter_no_change=max_iter, so both run exactly
--epochs epochs. lbfgs: scikit-learn's defaults (max_iter=200, tol=1e-4) unless --epochs is
given; both run scipy's L-BFGS-B and usually take the same number of iterations (reported).
For lbfgs a breakdown follows: the cost of one loss-and-gradient evaluation in each library
(mlpcore: one C++ call, Network.loss_and_grad; scikit-learn: its _loss_grad_lbfgs) and what the
rest of the fit costs per iteration (scipy's L-BFGS-B update, the same code in both).

Two clocks: wall time, and the process's CPU time. On a shared machine (other jobs preempting
this one) wall time mostly measures the neighbours; with 1 thread the CPU time is the work done.
The load average is printed before and after.

    python bench/sklearn_digits.py                       # 1 thread, 7 seeds, 100 epochs, adam
    python bench/sklearn_digits.py --solver lbfgs --threads 2
    python bench/sklearn_digits.py --threads 2 --solver sgd --epochs 50 --hidden 100 100,100

Needs the bench extra (scikit-learn, threadpoolctl). Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import mlpcore as mc
import numpy as np
from mlpcore.sklearn import MLPClassifier as McMLPClassifier
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


def fit_and_score(cls, params: dict, data: tuple, exact: bool):
    """(fit wall seconds, fit CPU seconds, test accuracy, iterations, fitted estimator)."""
    Xtr, Xte, ytr, yte = data
    est = cls(**params)
    t0, c0 = time.perf_counter(), time.process_time()
    est.fit(Xtr, ytr)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if exact:
        assert est.n_iter_ == params["max_iter"], (cls.__module__, est.n_iter_)
    return wall, cpu, float(est.score(Xte, yte)), est.n_iter_, est


def _per_call_cpu(f, reps: int) -> float:
    """Median CPU seconds of one call of f over 5 rounds of `reps` calls."""
    times = []
    for _ in range(5):
        c0 = time.process_time()
        for _ in range(reps):
            f()
        times.append((time.process_time() - c0) / reps)
    return statistics.median(times)


def evaluation_costs(mc_est, sk_est, Xtr: np.ndarray, ytr: np.ndarray) -> tuple[float, float]:
    """CPU seconds of one loss-and-gradient evaluation at the fitted weights: mlpcore's
    Network.loss_and_grad (as its L-BFGS calls it) and scikit-learn's _loss_grad_lbfgs."""
    from mlpcore.nn.parameter import place
    from mlpcore.sklearn.lbfgs import fit_lbfgs  # noqa: F401 (the module whose call is timed)
    from mlpcore.training import data as mcdata
    from sklearn.neural_network._multilayer_perceptron import _pack

    spec = mc_est._loss_spec()
    net = mc_est._model.compiled()
    lins = mc_est._linears()
    layout = [(*place(p), p is lin.weight) for lin in lins for p in (lin.weight, lin.bias)]
    theta = np.concatenate([p.data.ravel() for lin in lins for p in (lin.weight, lin.bias)]).astype(np.float64)
    Y = mc_est._validate_input(Xtr, ytr, incremental=True, reset=False)[1]
    X, Y = mcdata.prepare(Xtr, Y, spec.loss.kind, mc_est._model.dtype, net.in_features, net.out_features)

    def ours():
        net.loss_and_grad(layout, theta, np.empty_like(theta), spec.loss.spec, X, Y, None, mc_est.alpha,
                          spec.value_scale, 1.0 / spec.gain, validate=False)

    # scikit-learn's evaluation, set up as its _fit / _fit_lbfgs set it up
    sk = sk_est
    y = sk._label_binarizer.transform(ytr).astype(bool)
    units = [Xtr.shape[1]] + list(sk.hidden_layer_sizes) + [sk.n_outputs_]
    sk._coef_indptr, sk._intercept_indptr, start = [], [], 0
    for i in range(len(units) - 1):
        sk._coef_indptr.append((start, start + units[i] * units[i + 1], (units[i], units[i + 1])))
        start += units[i] * units[i + 1]
    for i in range(len(units) - 1):
        sk._intercept_indptr.append((start, start + units[i + 1]))
        start += units[i + 1]
    packed = _pack(sk.coefs_, sk.intercepts_)
    acts = [Xtr] + [None] * (len(units) - 1)
    deltas = [None] * (len(acts) - 1)
    cg = [np.empty((a, b), dtype=Xtr.dtype) for a, b in zip(units[:-1], units[1:])]
    ig = [np.empty(b, dtype=Xtr.dtype) for b in units[1:]]

    def theirs():
        sk._loss_grad_lbfgs(packed, Xtr, y, None, acts, deltas, cg, ig)

    return _per_call_cpu(ours, 20), _per_call_cpu(theirs, 20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs (adam, sgd; default 100) or L-BFGS max_iter (default scikit-learn's 200)")
    ap.add_argument("--solver", choices=["adam", "sgd", "lbfgs"], default="adam")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
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
    lbfgs = args.solver == "lbfgs"
    epochs = args.epochs if args.epochs is not None else (200 if lbfgs else 100)

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    data = (scaler.transform(Xtr).astype(args.dtype), scaler.transform(Xte).astype(args.dtype), ytr, yte)
    lr = args.lr if args.lr is not None else (1e-3 if args.solver == "adam" else 1e-2)
    what = (f"max_iter={epochs} tol={'1e-4' if args.epochs is None else 0}" if lbfgs
            else f"lr={lr} batch={args.batch_size} epochs={epochs}")
    print(
        f"digits: {len(ytr)} train / {len(yte)} test rows, 64 features, 10 classes, {args.dtype}; "
        f"solver={args.solver} {what}; threads={args.threads}; seeds={args.seeds}"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {mc.blas_info()}")
    print("load average before (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(
        f"{'hidden':<10}{'library':<14}{'test acc % median':>18}{'min..max':>14}{'iters':>7}{'fit s wall':>12}"
        f"{'fit s CPU':>11}{'ms/iter CPU':>13}"
    )
    warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is reached on purpose
    summary, breakdown = [], []
    for spec in args.hidden:
        hidden = tuple(int(h) for h in spec.split(","))
        if lbfgs:
            common = {"hidden_layer_sizes": hidden, "solver": "lbfgs", "max_iter": epochs}
            if args.epochs is not None:
                common["tol"] = 0.0
        else:
            common = {
                "hidden_layer_sizes": hidden,
                "solver": args.solver,
                "learning_rate_init": lr,
                "batch_size": args.batch_size,
                "max_iter": epochs,
                "tol": 0.0,
                "n_iter_no_change": epochs,
            }
        runs = {"mlpcore": [], "scikit-learn": []}
        with threadpool_limits(limits=args.threads, user_api="blas"):
            mc.set_num_threads(args.threads)
            fit_and_score(McMLPClassifier, {**common, "max_iter": 2, "n_iter_no_change": 2}, data, False)  # warm-up
            for seed in range(args.seeds):
                runs["mlpcore"].append(
                    fit_and_score(McMLPClassifier, {**common, "random_state": seed, "n_threads": args.threads},
                                  data, not lbfgs)
                )
                runs["scikit-learn"].append(
                    fit_and_score(SkMLPClassifier, {**common, "random_state": seed}, data, not lbfgs)
                )
            if lbfgs:
                ours, theirs = evaluation_costs(runs["mlpcore"][0][4], runs["scikit-learn"][0][4], data[0], data[2])
        med = {}
        for name, rs in runs.items():
            wall, cpu, acc, iters = ([r[i] for r in rs] for i in range(4))
            acc = [100 * a for a in acc]
            med[name] = (statistics.median(acc), statistics.median(wall), statistics.median(cpu),
                         statistics.median(iters), statistics.median(c / max(k, 1) for c, k in zip(cpu, iters)))
            print(
                f"{hidden!s:<10}{name:<14}{med[name][0]:>18.2f}{f'{min(acc):.2f}..{max(acc):.2f}':>14}"
                f"{med[name][3]:>7.0f}{med[name][1]:>12.4f}{med[name][2]:>11.4f}{1000 * med[name][4]:>13.3f}"
            )
        summary.append(
            (
                hidden,
                med["mlpcore"][0] - med["scikit-learn"][0],
                med["scikit-learn"][1] / med["mlpcore"][1],
                med["scikit-learn"][2] / med["mlpcore"][2],
            )
        )
        if lbfgs:
            breakdown.append((hidden, ours, theirs, med["mlpcore"][4] - ours, med["scikit-learn"][4] - theirs))
    print("load average after (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print("\nhidden    accuracy mlpcore - scikit-learn   fit speed-up wall   fit speed-up CPU")
    for hidden, diff, r_wall, r_cpu in summary:
        print(f"{hidden!s:<10}{diff:>+24.2f} pt{r_wall:>19.1f}x{r_cpu:>18.1f}x")
    if breakdown:
        print("\nper L-BFGS iteration, CPU ms: one loss+gradient evaluation (mlpcore, scikit-learn, ratio) and the rest")
        print("of an iteration (scipy's L-BFGS-B update, extra line-search evaluations, Python), mlpcore / scikit-learn")
        for hidden, ours, theirs, rest_mc, rest_sk in breakdown:
            print(f"{hidden!s:<10}{1000 * ours:>8.3f}{1000 * theirs:>8.3f}{theirs / ours:>7.1f}x"
                  f"{1000 * rest_mc:>12.3f}{1000 * rest_sk:>8.3f}")


if __name__ == "__main__":
    main()
