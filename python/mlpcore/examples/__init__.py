"""The lecture experiments, as small runnable programs.

``python -m mlpcore.examples`` lists them. Each one runs with ``python -m mlpcore.examples.NAME [--quick] [--out DIR] [--seed N]``, prints
its outcome, and saves a PNG plot into the current directory (or ``--out DIR``) when matplotlib
is installed (``pip install mlpcore[examples]``). Each also exposes
``run(quick=False, out=None, seed=0) -> dict`` (``out=None``: no plot), which the tests call
(tests/test_examples.py asserts every outcome below for seed 0 in quick mode).

- ``logistic_regression``: one ``Linear(2, 1)`` + ``BCEWithLogitsLoss`` on 2-D data; prints the
  accuracy and the learned decision line and checks it against the exact maximum-likelihood
  solution (Newton's method). Plot: the line over the class regions.
- ``triangle``: points inside vs outside a triangle. A linear model stays near the majority
  rate (about 0.63 against 0.5: one straight line cannot enclose a triangle); one hidden layer
  of 16 units (three would do in principle, one per edge) classifies it almost perfectly
  (about 0.97). Plot: both decision boundaries.
- ``half_moons``: two interleaving half circles. One hidden layer of 2 vs 10 units (10 is
  clearly better), then 2 hidden layers of 20 vs 5 hidden layers of 64. Plot: the four decision
  boundaries side by side.
- ``universal_approximation``: sin on [-pi, pi] fitted by one tanh hidden layer of 1, 2 and 80
  units; the error falls by orders of magnitude with the width. Plot: the three fits.
- ``gates``: the computational-graph ("gates") lecture with mlpcore Modules: multiply, add and
  max gates with numpy forward/backward, composed into f(x, y, z) = (x + y) z and
  g = x y + max(z, w), backpropagated by hand, each gate checked with ``mc.gradcheck``; and
  mlpcore's ``Maxout`` / ``Residual`` shown to be a max gate / an add gate. Plot: the graph with
  values and gradients.
"""

EXAMPLES = ("logistic_regression", "triangle", "half_moons", "universal_approximation", "gates")

__all__ = ["EXAMPLES"]
