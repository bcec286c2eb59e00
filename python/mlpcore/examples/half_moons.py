"""Half moons: how width and depth change what an MLP can separate.

Two interleaving half circles with noise (0.2). Four ReLU networks, all trained the same way
(Adam, lr 0.01, batch 32) on 500 points and tested on 500 fresh ones:

- one hidden layer of 2 units: two ReLU hinges give a boundary of at most three straight
  pieces, which cannot follow the moons (about 0.86 accuracy);
- one hidden layer of 10 units: enough pieces to bend around them (about 0.97);
- two hidden layers of 20 units, and five hidden layers of 64 units (30 times the
  parameters): both reach the noise floor of the data (about 0.96); the deep, wide one draws a
  more contorted boundary around individual noisy points, the start of overfitting.

    python -m mlpcore.examples.half_moons [--quick] [--out DIR] [--seed N]

Plot: ``half_moons.png``, the four decision boundaries side by side (on the test points).
"""

from __future__ import annotations

from typing import Optional, Sequence

import mlpcore as mc
from mlpcore import datasets

from ._common import accuracy, describe, figure, mlp, parse_args, plot_target, save

# name -> layer widths (input 2, two classes out)
MODELS = {
    "1x2": [2, 2, 2],
    "1x10": [2, 10, 2],
    "2x20": [2, 20, 20, 2],
    "5x64": [2, 64, 64, 64, 64, 64, 2],
}


def run(quick: bool = False, out: Optional[str] = None, seed: int = 0) -> dict:
    """Train the four models. Returns {"1x2": {"train_accuracy", "accuracy"}, "1x10": ...,
    "2x20": ..., "5x64": ..., "plots"} (``accuracy`` on the test set)."""
    X, y = datasets.make_moons(500, noise=0.2, seed=seed)
    Xt, yt = datasets.make_moons(500, noise=0.2, seed=seed + 1000)
    epochs = 100 if quick else 300

    results: dict = {}
    models = {}
    print(f"half moons: {len(X)} training and {len(Xt)} test points, noise 0.2, {epochs} epochs each")
    for name, widths in MODELS.items():
        model = mlp(widths, activation=mc.ReLU, seed=seed)
        opt = mc.Adam(model.parameters(), lr=0.01)
        trainer = mc.Trainer(model, loss=mc.CrossEntropyLoss(), optimizer=opt, batch_size=32)
        trainer.fit(X, y, epochs=epochs, seed=seed, verbose=0)
        results[name] = {"train_accuracy": accuracy(trainer, X, y), "accuracy": accuracy(trainer, Xt, yt)}
        models[name] = model
        n_params = sum(p.numel for p in model.parameters())
        r = results[name]
        print(f"  {name:<5} {describe(widths):<27} {n_params:>6} parameters  "
              f"train accuracy {r['train_accuracy']:.3f}  test accuracy {r['accuracy']:.3f}")

    plots = []
    path = plot_target(out, "half_moons.png")
    if path is not None:
        from mlpcore.plot import plot_decision_boundary

        fig, axes = figure(len(MODELS), (4.0, 3.8))
        for ax, name in zip(axes, MODELS):
            plot_decision_boundary(models[name], Xt, yt, ax=ax, resolution=150,
                                   title=f"{name}: test accuracy {results[name]['accuracy']:.3f}")
        plots.append(save(fig, path))

    return {**results, "plots": plots}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    main()
