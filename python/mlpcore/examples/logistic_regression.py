"""Logistic regression on 2-D data: one ``Linear(2, 1)`` trained with ``BCEWithLogitsLoss``.

The model is p(y=1 | x) = sigmoid(w . x + b); its decision boundary is the line w . x + b = 0.
Trained by mini-batch Adam, it lands on the maximum-likelihood solution, which this example also
computes exactly in float64 by Newton's method (IRLS) and compares against: same accuracy, same
loss, and a boundary direction within a few degrees.

    python -m mlpcore.examples.logistic_regression [--quick] [--out DIR] [--seed N]

Plot: ``logistic_regression.png``, the two class regions with the data and the learned line.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

import mlpcore as mc
from mlpcore import datasets

from ._common import parse_args, plot_target, save


def newton_logistic(X: np.ndarray, y: np.ndarray, iters: int = 30) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton's method (IRLS), float64.
    X (n, f), y (n,) in {0, 1} -> (w (f,), b) packed as (f + 1,)."""
    A = np.c_[X.astype(np.float64), np.ones(len(X))]  # (n, f + 1): a bias column
    theta = np.zeros(A.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-A @ theta))
        H = A.T @ (A * (p * (1.0 - p))[:, None])  # Hessian of the summed negative log-likelihood
        theta -= np.linalg.solve(H, A.T @ (p - y))
    return theta


def _bce(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    z = np.c_[X.astype(np.float64), np.ones(len(X))] @ theta
    return float(np.mean(np.logaddexp(0.0, z) - y * z))  # stable log(1 + e^z) - y z


def run(quick: bool = False, out: Optional[str] = None, seed: int = 0) -> dict:
    """Train, compare with the exact solution, print and (with ``out``) plot.

    Returns {"accuracy", "loss", "weight" (2,), "bias", "newton_accuracy", "newton_loss",
    "angle_deg" (between the learned and the exact boundary normals), "plots"}.
    """
    X, y = datasets.make_logistic(400, n_features=2, scale=4.0, seed=seed)
    t = y.reshape(-1, 1).astype(np.float32)  # BCE targets are shaped like the output (n, 1)

    layer = mc.Linear(2, 1, init="zeros", seed=seed)
    model = mc.Sequential(layer)
    trainer = mc.Trainer(model, loss=mc.BCEWithLogitsLoss(), optimizer=mc.Adam(model.parameters(), lr=0.05),
                         batch_size=32)
    trainer.fit(X, t, epochs=50 if quick else 150, seed=seed, verbose=0)
    logs = trainer.evaluate(X, t)

    w, b = layer.weight.data[0].astype(np.float64), float(layer.bias.data[0])
    exact = newton_logistic(X, y)
    A = np.c_[X.astype(np.float64), np.ones(len(X))]
    newton_acc = float(np.mean((A @ exact > 0) == (y == 1)))
    cos = float(w @ exact[:2] / (np.linalg.norm(w) * np.linalg.norm(exact[:2])))
    angle = math.degrees(math.acos(min(1.0, max(-1.0, cos))))

    print(f"logistic regression on {len(X)} points (class 1 share {y.mean():.3f})")
    print(f"  mlpcore   : accuracy {logs['accuracy']:.4f}  loss {logs['loss']:.4f}  "
          f"line {w[0]:+.3f} x1 {w[1]:+.3f} x2 {b:+.3f} = 0")
    print(f"  exact MLE : accuracy {newton_acc:.4f}  loss {_bce(exact, X, y):.4f}  "
          f"line {exact[0]:+.3f} x1 {exact[1]:+.3f} x2 {exact[2]:+.3f} = 0")
    print(f"  angle between the two boundary normals: {angle:.2f} degrees")

    plots = []
    path = plot_target(out, "logistic_regression.png")
    if path is not None:
        from mlpcore.plot import plot_decision_boundary

        fig = plot_decision_boundary(model, X, y,
                                     title=f"logistic regression: accuracy {logs['accuracy']:.3f}")
        ax = fig.axes[0]
        xs, ylim = np.array(ax.get_xlim()), ax.get_ylim()
        if abs(w[1]) > 1e-12:  # the line w1 x1 + w2 x2 + b = 0, drawn as x2(x1)
            ax.plot(xs, -(w[0] * xs + b) / w[1], "k-", lw=1.5, label="learned boundary")
            ax.set_xlim(xs)
            ax.set_ylim(ylim)
            ax.legend(loc="upper right")
        plots.append(save(fig, path))

    return {"accuracy": float(logs["accuracy"]), "loss": float(logs["loss"]), "weight": w, "bias": b,
            "newton_accuracy": newton_acc, "newton_loss": _bce(exact, X, y), "angle_deg": angle,
            "plots": plots}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    main()
