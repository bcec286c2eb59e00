"""MLPRegressor: scikit-learn's multi-layer perceptron regressor on mlpcore (see ``mlpcore.sklearn``)."""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..losses import MSELoss, PoissonNLLLoss
from .base import LossSpec, _BaseMLP, _num_threads, _stochastic_solver


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor with scikit-learn's API, trained by mlpcore's C++ core.

    ``loss='squared_error'``: identity output, ``loss_curve_`` is half the mean squared error plus
    the L2 term, as scikit-learn reports it. ``loss='poisson'``: log link (predictions are the
    exp of the network's output, ``out_activation_ = 'exp'``), half the Poisson deviance, as
    scikit-learn's. ``y`` may be (n_samples,) or (n_samples, n_outputs). Other parameters and attributes: see
    :class:`MLPClassifier` and the module docstring.
    """

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="cpu",
        n_threads=None,
    ):
        self.loss = loss
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            device=device,
            n_threads=n_threads,
        )

    def _validate_params(self) -> None:
        if self.loss not in ("squared_error", "poisson"):
            raise ValueError(f"loss: expected 'squared_error' or 'poisson', got {self.loss!r}")
        super()._validate_params()

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """Returns (X as scikit-learn checked it (n, features), Y float64 (n, outputs), y as given
        (1-D or 2-D)); the fit converts Y to the network's dtype."""
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float64)
        return X, Y, y

    def _n_outputs_for(self, Y: np.ndarray) -> int:
        return Y.shape[1]

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _loss_spec(self) -> LossSpec:
        """Squared error: the core's MSE is mean((pred - y)^2) over all n * outputs elements;
        scikit-learn's loss is half of it, and its gradient is that of half the squared error
        summed over the outputs (so its value and gradient differ by a factor n_outputs; L-BFGS
        reproduces both). Poisson: the core's PoissonNLLLoss on the log-rate z (the network's
        output) is mean(exp(z) - y z); scikit-learn's half Poisson deviance sums over the outputs
        and adds the constant of ``_loss_offset``."""
        k = self.n_outputs_
        if self.loss == "poisson":
            return LossSpec(PoissonNLLLoss(log_input=True), 1.0 / k, float(k))
        return LossSpec(MSELoss(), 2.0 / k, 0.5)

    def _loss_constants(self, Y: np.ndarray):
        """Poisson: scikit-learn's deviance xlogy(y, y / p) - y + p is exp(z) - y z plus
        xlogy(y, y) - y, a constant of the targets: per row, summed over the outputs."""
        if self.loss != "poisson":
            return None
        Y = np.asarray(Y, dtype=np.float64)
        return (xlogy(Y, Y) - Y).sum(axis=1)

    def _decode(self, out: np.ndarray) -> np.ndarray:
        if self.out_activation_ == "exp":
            with np.errstate(over="ignore"):  # a diverged model predicts inf, as scikit-learn's would
                out = np.exp(out)
        return out[:, 0] if out.shape[1] == 1 else out

    @staticmethod
    def _score_function(y, pred, sample_weight=None) -> float:
        return r2_score(y, pred, sample_weight=sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Fit on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_outputs);
        sample_weight (n_samples,) or None. Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y); the first call initialises the network. Only for the stochastic
        solvers ('sgd', 'adam')."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X) -> np.ndarray:
        """Predictions (n_samples,) for one output, else (n_samples, n_outputs); float32 for
        float32 X and float32 parameters, else float64 (scikit-learn's promotion)."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            X = self._check_X(X)
            return self._decode(self._forward(X)).astype(self._out_dtype(X), copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
