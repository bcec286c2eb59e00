"""Universal approximation: fitting sin(x) on [-pi, pi] with 1, 2 and 80 tanh hidden units.

A network with one hidden layer, y = sum_j v_j tanh(w_j x + b_j) + c, can approximate any
continuous function on an interval as closely as we like, given enough hidden units. With one
unit it is a single S-shaped step, which can only sketch sin's rise from -1 to 1; two units can
bend at both ends; 80 units follow the curve to within a fraction of a percent. Each model is
trained on 200 samples (MSELoss, Adam lr 0.01, batch 32) and its mean squared error is measured
against sin on an even grid of 400 points.

The theorem is about what a width can represent, not about what one training run finds: a small
net sometimes settles in a poor local minimum (two units that act as one). So each width is
trained from ``RESTARTS`` initialisations and keeps the one with the lowest *training* error.

    python -m mlpcore.examples.universal_approximation [--quick] [--out DIR] [--seed N]

Plot: ``universal_approximation.png``, the three fits side by side.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

import mlpcore as mc
from mlpcore import datasets

from ._common import figure, mlp, parse_args, plot_target, save

HIDDEN = (1, 2, 80)
RESTARTS = 3


def run(quick: bool = False, out: Optional[str] = None, seed: int = 0) -> dict:
    """Fit the three models. Returns {"mse": {1: ..., 2: ..., 80: ...} (on the grid), "plots"}."""
    interval = (-math.pi, math.pi)
    X, y = datasets.make_function("sin", 200, interval=interval, seed=seed)
    Xg, yg = datasets.make_function("sin", 400, interval=interval, grid=True)
    epochs = 300 if quick else 1000

    mse, models = {}, {}
    print(f"fitting sin on [-pi, pi] from {len(X)} samples, {epochs} epochs, best of {RESTARTS} starts; "
          f"mse on a {len(Xg)}-point grid:")
    for h in HIDDEN:
        best = None
        for r in range(RESTARTS):
            model = mlp([1, h, 1], activation=mc.Tanh, seed=seed + 100 * r, init="xavier_uniform")
            trainer = mc.Trainer(model, loss=mc.MSELoss(), optimizer=mc.Adam(model.parameters(), lr=0.01),
                                 batch_size=32)
            trainer.fit(X, y, epochs=epochs, seed=seed + r, verbose=0)
            train_mse = float(trainer.evaluate(X, y)["mse"])
            if best is None or train_mse < best[0]:
                best = (train_mse, trainer)
        models[h] = best[1].model
        mse[h] = float(best[1].evaluate(Xg, yg)["mse"])
        print(f"  {h:>3} hidden unit{'s' if h > 1 else ' '}  mse {mse[h]:.2e}")
    print(f"  error falls {mse[HIDDEN[0]] / mse[HIDDEN[-1]]:.0f}x from {HIDDEN[0]} to {HIDDEN[-1]} units")

    plots = []
    path = plot_target(out, "universal_approximation.png")
    if path is not None:
        from mlpcore.plot import plot_function_fit

        fig, axes = figure(len(HIDDEN), (4.5, 3.5))
        for ax, h in zip(axes, HIDDEN):
            plot_function_fit(models[h], X, y, true_fn=np.sin, ax=ax,
                              title=f"{h} tanh unit{'s' if h > 1 else ''}: mse {mse[h]:.1e}")
        plots.append(save(fig, path))

    return {"mse": mse, "plots": plots}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    main()
