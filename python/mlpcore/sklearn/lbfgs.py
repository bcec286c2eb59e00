"""scikit-learn's L-BFGS solver (``solver='lbfgs'``) on the core.

``scipy.optimize.minimize(method="L-BFGS-B")`` drives the network's parameters as one flat
float64 vector; each function evaluation is one C++ call, ``Network.loss_and_grad``: the vector
is written into the parameters, forward, loss and backward run over the whole data set (in
chunks of rows that bound the workspace) and the gradient comes back in the vector's layout,
with scikit-learn's L2 term (alpha / (2 s) * ||W||^2 over the weights, not the biases; s the
number of rows or the sum of the sample weights) and scaling (see ``LossSpec``). No Python runs
per layer. With sample weights the loss is their weighted mean, as scikit-learn's.

The flat vector is the concatenation of the parameters in ``model.parameters()`` order (weight
(out, in) then bias, per layer); scikit-learn packs all coefs (in, out) then all intercepts. The
order is internal: ``coefs_`` / ``intercepts_`` read the parameters themselves.

What follows scikit-learn's ``_fit_lbfgs``: ``max_iter`` (scipy's maxiter), ``max_fun``
(maxfun), ``tol`` (gtol), ``n_iter_`` (scipy's iteration count, at most max_iter), ``loss_``
(the final value), a ConvergenceWarning with its message when scipy stops for any reason but
convergence, ``early_stopping`` ignored. An extra: ``loss_curve_`` holds the loss after each
iteration (a warm-started fit appends, as with the stochastic solvers; scikit-learn's L-BFGS
leaves no curve).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from ..nn.parameter import place
from ..training import data
from .stochastic import _NON_FINITE


def _convergence_warning(result, n_iter: int, max_iter: int) -> None:
    """scikit-learn's warning for an L-BFGS run that did not converge (``_check_optimize_result``)."""
    msg = f"lbfgs failed to converge after {n_iter} iteration(s) (status={result.status}):\n{result.message}\n"
    if n_iter >= max_iter:
        msg += f"\nIncrease the number of iterations to improve the convergence (max_iter={max_iter})."
    msg += (
        "\nYou might also want to scale the data as shown in:\n"
        "    https://scikit-learn.org/stable/modules/preprocessing.html"
    )
    warnings.warn(msg, ConvergenceWarning, stacklevel=3)


def fit_lbfgs(est, X, Y: np.ndarray, sample_weight) -> None:
    """Minimise scikit-learn's regularised loss over (X, Y) from the current parameters; the
    parameters end at scipy's result."""
    spec = est._loss_spec()
    model = est._model
    net = model.compiled()
    consts = est._loss_constants(Y)
    offset = 0.0 if consts is None else float(np.average(consts, weights=sample_weight))
    X, Y = data.prepare(X, Y, spec.loss.kind, model.dtype, net.in_features, net.out_features)  # scanned once
    W = data.as_sample_weight(sample_weight, "sample_weight", X.shape[0], model.dtype)
    params = [p for lin in est._linears() for p in (lin.weight, lin.bias)]
    layout = [(*place(p), p is lin.weight) for lin in est._linears() for p in (lin.weight, lin.bias)]
    theta0 = np.concatenate([p.data.ravel() for p in params]).astype(np.float64)
    alpha, value_scale, grad_scale = float(est.alpha), spec.value_scale, 1.0 / spec.gain

    curve, last = [], [np.nan]

    def loss_and_grad(theta: np.ndarray) -> tuple:
        grad = np.empty_like(theta)  # scipy may keep the previous gradient: a fresh array per call
        value = net.loss_and_grad(layout, theta, grad, spec.loss.spec, X, Y, W, alpha, value_scale, grad_scale,
                                  validate=False)
        last[0] = value + offset  # scipy's stopping rule is relative to |f|: the value scikit-learn reports
        return last[0], grad

    def record(intermediate_result) -> None:
        # scipy >= 1.11 passes the iteration's result; older versions pass x, which the last
        # evaluation (the line search's accepted point) belongs to
        curve.append(float(getattr(intermediate_result, "fun", last[0])))
        if est.verbose:
            print(f"Iteration {len(curve)}, loss = {curve[-1]:.8f}")

    result = scipy.optimize.minimize(
        loss_and_grad,
        theta0,
        method="L-BFGS-B",
        jac=True,
        callback=record,
        options={"maxfun": int(est.max_fun), "maxiter": int(est.max_iter), "gtol": float(est.tol)},
    )
    est.n_iter_ = min(int(result.nit), int(est.max_iter))
    if result.status != 0:
        _convergence_warning(result, est.n_iter_, int(est.max_iter))
    est.loss_ = float(result.fun)
    est.loss_curve_ = list(getattr(est, "loss_curve_", [])) + curve  # a warm start appends, as the other solvers
    if not np.all(np.isfinite(result.x)):
        raise ValueError(_NON_FINITE)
    at = 0
    for p in params:
        p.data = result.x[at:at + p.numel].reshape(p.shape)
        at += p.numel
