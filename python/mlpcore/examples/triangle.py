"""The triangle problem: is a point inside a triangle? A linear model fails, one hidden layer succeeds.

Half of the points lie inside a triangle (class 1), half in the rest of the square [-1, 1]^2
(class 0). A linear classifier draws one straight line, so the best it can do is cut off a
slice of the square: its accuracy stays near the majority rate (about 0.63 against 0.5). The inside of a triangle
is the intersection of three half-planes, so one hidden layer with (at least) three units can
represent it exactly: each unit learns one edge and the output layer ANDs them. We use 16 tanh
units, which train quickly and reliably.

    python -m mlpcore.examples.triangle [--quick] [--out DIR] [--seed N]

Plot: ``triangle.png``, the two decision boundaries side by side.
"""

from __future__ import annotations

from typing import Optional, Sequence

import mlpcore as mc
from mlpcore import datasets

from ._common import accuracy, describe, figure, mlp, parse_args, plot_target, save


def run(quick: bool = False, out: Optional[str] = None, seed: int = 0) -> dict:
    """Train both models on 1000 points, test on 1000 fresh ones.

    Returns {"majority", "linear_accuracy", "linear_train_accuracy", "hidden_accuracy",
    "hidden_train_accuracy", "plots"}; accuracies on the test set unless named ``train``.
    """
    X, y = datasets.make_triangle(1000, seed=seed)
    Xt, yt = datasets.make_triangle(1000, seed=seed + 1000)
    majority = float(max(yt.mean(), 1 - yt.mean()))

    results, models = {}, {}
    for name, widths, epochs in (("linear", [2, 2], 50 if quick else 100),
                                 ("hidden", [2, 16, 2], 100 if quick else 300)):
        model = mlp(widths, activation=mc.Tanh, seed=seed)
        opt = mc.Adam(model.parameters(), lr=0.02)
        trainer = mc.Trainer(model, loss=mc.CrossEntropyLoss(), optimizer=opt, batch_size=32)
        trainer.fit(X, y, epochs=epochs, seed=seed, verbose=0)
        results[name + "_train_accuracy"] = accuracy(trainer, X, y)
        results[name + "_accuracy"] = accuracy(trainer, Xt, yt)
        models[name] = (model, widths)

    print(f"triangle: {len(X)} training and {len(Xt)} test points, majority rate {majority:.3f}")
    for name in ("linear", "hidden"):
        print(f"  {name:<6} {describe(models[name][1]):<11} "
              f"train accuracy {results[name + '_train_accuracy']:.3f}  "
              f"test accuracy {results[name + '_accuracy']:.3f}")

    plots = []
    path = plot_target(out, "triangle.png")
    if path is not None:
        from mlpcore.plot import plot_decision_boundary

        fig, axes = figure(2)
        for ax, name in zip(axes, ("linear", "hidden")):
            model, widths = models[name]
            title = f"{describe(widths)}: test accuracy {results[name + '_accuracy']:.3f}"
            plot_decision_boundary(model, Xt, yt, ax=ax, resolution=150, title=title)
        plots.append(save(fig, path))

    return {"majority": majority, **results, "plots": plots}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    main()
