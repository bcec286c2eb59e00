"""The shared machinery of the scikit-learn estimators (see ``mlpcore.sklearn``): parameters,
the network and optimizer in scikit-learn's terms, the fit loop (scikit-learn's stopping rules
around the Trainer's epoch runner), prediction through the one predict path, pickling."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from .. import _core
from .._validate import is_finite, is_int
from ..io import load_checkpoint_bytes, save_bytes
from ..nn import Linear, ReLU, Sequential, Sigmoid, Tanh
from ..optim import SGD, Adam
from ..training import data
from ..nn.inference import predict as _predict
from ..training.trainer import Trainer

_HIDDEN_ACTIVATIONS = {"identity": None, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU}

@contextlib.contextmanager
def _num_threads(n: int | None):
    """Run the block with ``n`` BLAS/core threads, restoring the previous count (None: as is)."""
    if n is None:
        yield
        return
    old = _core.get_num_threads()
    _core.set_num_threads(int(n))
    try:
        yield
    finally:
        _core.set_num_threads(old)


class _BaseMLP(BaseEstimator):
    """Shared machinery. Subclasses define the target encoding (``_encode_targets``), the loss
    (``_loss_for``), decoding of raw network outputs (``_decode``) and the validation score."""

    def __init__(
        self,
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
        device="cpu",
        n_threads=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.n_threads = n_threads

    # ---- parameter validation (at fit time, as scikit-learn requires) ----
    def _hidden_sizes(self) -> list:
        h = self.hidden_layer_sizes
        sizes = list(h) if hasattr(h, "__iter__") and not isinstance(h, str) else [h]
        for s in sizes:
            if not is_int(s) or s < 1:
                raise ValueError(
                    f"hidden_layer_sizes: expected positive ints, got {self.hidden_layer_sizes!r}"
                )
        return [int(s) for s in sizes]

    def _validate_params(self) -> None:
        def need(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise ValueError(f"{name}: expected {expected}, got {getattr(self, name)!r}")

        self._hidden_sizes()
        need(self.activation in _HIDDEN_ACTIVATIONS, "activation", f"one of {sorted(_HIDDEN_ACTIVATIONS)}")
        if self.solver == "lbfgs":
            raise ValueError("solver: 'lbfgs' is not supported by mlpcore; use 'sgd' or 'adam'")
        need(self.solver in ("sgd", "adam"), "solver", "'sgd' or 'adam'")
        need(is_finite(self.alpha) and self.alpha >= 0, "alpha", "a real number >= 0")
        need(
            self.batch_size == "auto" or (is_int(self.batch_size) and self.batch_size >= 1),
            "batch_size",
            "'auto' or an int >= 1",
        )
        need(
            self.learning_rate in ("constant", "invscaling", "adaptive"),
            "learning_rate",
            "'constant', 'invscaling' or 'adaptive'",
        )
        need(
            is_finite(self.learning_rate_init) and self.learning_rate_init > 0,
            "learning_rate_init",
            "a number > 0",
        )
        need(is_finite(self.power_t) and self.power_t >= 0, "power_t", "a number >= 0")
        need(is_int(self.max_iter) and self.max_iter >= 1, "max_iter", "an int >= 1")
        need(isinstance(self.shuffle, (bool, np.bool_)), "shuffle", "a bool")
        need(is_finite(self.tol) and self.tol >= 0, "tol", "a number >= 0")
        need(isinstance(self.warm_start, (bool, np.bool_)), "warm_start", "a bool")
        need(is_finite(self.momentum) and 0 <= self.momentum <= 1, "momentum", "a number in [0, 1]")
        need(isinstance(self.nesterovs_momentum, (bool, np.bool_)), "nesterovs_momentum", "a bool")
        need(isinstance(self.early_stopping, (bool, np.bool_)), "early_stopping", "a bool")
        need(
            is_finite(self.validation_fraction) and 0 <= self.validation_fraction < 1,
            "validation_fraction",
            "a number in [0, 1)",
        )
        need(is_finite(self.beta_1) and 0 <= self.beta_1 < 1, "beta_1", "a number in [0, 1)")
        need(is_finite(self.beta_2) and 0 <= self.beta_2 < 1, "beta_2", "a number in [0, 1)")
        need(is_finite(self.epsilon) and self.epsilon > 0, "epsilon", "a number > 0")
        need(
            (is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1)
            or self.n_iter_no_change == np.inf,
            "n_iter_no_change",
            "an int >= 1 or np.inf",
        )
        need(
            isinstance(self.device, str) and (self.device == "cpu" or self.device.startswith("cuda")),
            "device",
            "'cpu' or 'cuda'",
        )
        need(
            self.n_threads is None or (is_int(self.n_threads) and self.n_threads >= 1),
            "n_threads",
            "None or an int >= 1",
        )

    # ---- input handling: scikit-learn's checks (feature names and counts, its messages), then
    # the package's one input path (training.data) into the layout the core reads ----
    def _check_X(self, X) -> np.ndarray:
        """Features for prediction: checked by scikit-learn, sparse densified (the predict path
        converts to the network's float32 and scans what it reads)."""
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False)
        return data.to_array(X, "X", np.float32)

    # ---- the network ----
    def _build_model(self, layer_units: list, rng: np.random.RandomState) -> None:
        """Sequential(Linear, act, ..., Linear) with scikit-learn's initial weights drawn from rng."""
        act = _HIDDEN_ACTIVATIONS[self.activation]
        factor = 2.0 if self.activation == "logistic" else 6.0
        mods = []
        for i, (fan_in, fan_out) in enumerate(zip(layer_units[:-1], layer_units[1:])):
            lin = Linear(fan_in, fan_out, init="zeros", seed=0)
            bound = np.sqrt(factor / (fan_in + fan_out))
            # scikit-learn draws coef (fan_in, fan_out) then intercept (fan_out,); our weight is (out, in)
            lin.weight.data = rng.uniform(-bound, bound, (fan_in, fan_out)).T
            lin.bias.data = rng.uniform(-bound, bound, fan_out)
            mods.append(lin)
            if act is not None and i < len(layer_units) - 2:
                mods.append(act())
        model = Sequential(*mods)
        if self.device != "cpu":
            model.to(self.device)
        self._model = model
        self._layer_units = list(layer_units)
        self._optimizer = None

    def _make_optimizer(self) -> None:
        params = self._model.parameters()
        if self.solver == "sgd":
            self._optimizer = SGD(
                params,
                lr=1.0,
                momentum=float(self.momentum),
                nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
            )
        else:
            self._optimizer = Adam(params, lr=1.0, betas=(float(self.beta_1), float(self.beta_2)), eps=1.0)
        self._learning_rate = float(self.learning_rate_init)  # scikit-learn's current learning rate

    def _configure_optimizer(self, batch_size: int) -> None:
        """Map scikit-learn's (learning rate, alpha, epsilon) onto the core optimizer, undoing the
        loss gain c (see the module docstring)."""
        c = self._loss_gain
        p = self._optimizer._core.params
        p.weight_decay = c * float(self.alpha) / batch_size
        if self.solver == "sgd":
            p.lr = self._learning_rate / c
        else:
            p.lr = self._learning_rate
            p.eps = float(self.epsilon) * c
            p.beta1, p.beta2 = float(self.beta_1), float(self.beta_2)
        self._optimizer._core.params = p

    def _forward(self, X: np.ndarray, invariant: bool = True) -> np.ndarray:
        """Raw network outputs (n, outputs) as float64 (logits for the classifier), through the
        one predict path. ``invariant``: in the core's batch-invariant mode, so that a row's
        prediction does not depend on the rows predicted with it (scikit-learn checks that
        predicting a subset gives the rows of predicting the whole, bit for bit)."""
        return _predict(self._model, X, batch_invariant=invariant or None).astype(np.float64)

    def _weights_sq_norm(self) -> float:
        """||W||^2 over every weight matrix (not the biases), as scikit-learn's L2 term."""
        with np.errstate(over="ignore"):  # diverged weights give inf, as scikit-learn's float loss would
            return sum(
                float(np.dot(w, w))
                for w in (lin.weight.data.ravel() for lin in self._model.layers if isinstance(lin, Linear))
            )

    # ---- training ----
    def _fit(self, X, y, incremental: bool):
        self._validate_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        X, Y, y_orig = self._validate_input(X, y, incremental, reset=first_pass)
        n_outputs = self._n_outputs_for(Y)
        rng = check_random_state(self.random_state)
        with _num_threads(self.n_threads):
            if first_pass:
                self._initialize(X.shape[1], n_outputs, rng)
            if self._optimizer is None or not incremental:
                self._make_optimizer()
            self._fit_stochastic(X, Y, y_orig, rng, incremental)
        return self

    def _initialize(self, n_features: int, n_outputs: int, rng) -> None:
        self.n_outputs_ = n_outputs
        layer_units = [n_features] + self._hidden_sizes() + [n_outputs]
        self.n_layers_ = len(layer_units)
        self._build_model(layer_units, rng)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _fit_stochastic(self, X, Y: np.ndarray, y_orig, rng, incremental: bool) -> None:
        """scikit-learn's stochastic solver loop (loss_curve_, tol / n_iter_no_change, early
        stopping, learning-rate schedules) around the Trainer's epoch runner: one C++ call per
        epoch of shuffled mini-batches, the same runner ``Trainer.fit`` uses."""
        loss, c = self._loss_for(self.n_outputs_)
        self._loss_gain = c
        trainer = Trainer(self._model, loss=loss, optimizer=self._optimizer)
        # the one input path: float32 C-contiguous features, targets in the core's format, scanned
        # once here; the epochs and the validation scores read them without further checks
        X, Y = trainer._prepare(X, Y, trainer._net())
        early_stopping = bool(self.early_stopping)
        if early_stopping:
            # don't stratify multilabel / regression targets (as scikit-learn)
            stratify = y_orig if (isinstance(self, ClassifierMixin) and np.ndim(y_orig) == 1) else None
            idx_train, idx_val = train_test_split(
                np.arange(X.shape[0]), random_state=rng, test_size=self.validation_fraction, stratify=stratify
            )
            if idx_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of "
                    "your dataset."
                )
            val = (X[idx_val], Y[idx_val], y_orig[idx_val])
            X, Y = X[idx_train], Y[idx_train]  # fancy indexing: fresh C-contiguous copies
            self.validation_scores_ = self.validation_scores_ if self.validation_scores_ is not None else []
            if self.best_validation_score_ is None:
                self.best_validation_score_ = -np.inf
            best_params = self._model.state_dict()
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n))
        n_batches = -(-n // batch_size)
        alpha = float(self.alpha)
        self._configure_optimizer(batch_size)

        self.n_iter_ = 0
        for _ in range(self.max_iter):
            seed = int(rng.randint(2**31 - 1))  # a fresh shuffle per epoch, drawn from random_state
            try:
                value = trainer._run_epoch(X, Y, batch_size, bool(self.shuffle), seed, self.n_iter_).loss
            except RuntimeError as e:
                if "non-finite" not in str(e):
                    raise
                raise ValueError(
                    "Solver produced non-finite parameter weights. The input data may contain large "
                    f"values and need to be preprocessed. ({e})"
                ) from None
            epoch_loss = self._sklearn_loss(value)
            if alpha > 0:
                epoch_loss += 0.5 * alpha * self._weights_sq_norm() * n_batches / n
            self.n_iter_ += 1
            self.loss_ = epoch_loss
            self.t_ += n
            self.loss_curve_.append(epoch_loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {epoch_loss:.8f}")

            # no-improvement count on the training loss or on the validation score (scikit-learn's rule)
            if early_stopping:
                score = self._validation_score(*val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}")
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = self._model.state_dict()
            else:
                if epoch_loss > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                self.best_loss_ = min(self.best_loss_, epoch_loss)

            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._learning_rate = float(self.learning_rate_init) / (self.t_ + 1) ** float(self.power_t)
                self._configure_optimizer(batch_size)

            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                msg = (
                    f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                    "consecutive epochs."
                )
                if self.solver == "sgd" and self.learning_rate == "adaptive" and self._learning_rate > 1e-6:
                    self._learning_rate /= 5.0
                    self._configure_optimizer(batch_size)
                    self._no_improvement_count = 0
                    if self.verbose:
                        print(f"{msg} Setting learning rate to {self._learning_rate:f}")
                else:
                    if self.verbose:
                        print(msg + " Stopping.")
                    break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                    "optimization hasn't converged yet.",
                    ConvergenceWarning,
                )
        if early_stopping:
            self._model.load_state_dict(best_params)

    # ---- fitted views in scikit-learn's layout ----
    @property
    def coefs_(self) -> list:
        """Weights per layer, shape (fan_in, fan_out) as scikit-learn (copies, float32)."""
        if not hasattr(self, "_model"):
            raise AttributeError("coefs_: the estimator is not fitted")
        return [lin.weight.data.T.copy() for lin in self._model.layers if isinstance(lin, Linear)]

    @property
    def intercepts_(self) -> list:
        """Biases per layer, shape (fan_out,) (copies, float32)."""
        if not hasattr(self, "_model"):
            raise AttributeError("intercepts_: the estimator is not fitted")
        return [lin.bias.data.copy() for lin in self._model.layers if isinstance(lin, Linear)]

    # ---- pickling: parameters and optimizer state travel as mlpcore checkpoint bytes ----
    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        model = state.pop("_model", None)
        opt = state.pop("_optimizer", None)
        if model is not None:
            # any fitted state pickles, as scikit-learn's own estimators do: non-finite weights too
            state["_weights_safetensors"] = save_bytes(model, opt, allow_nonfinite=True)
        return state

    def __setstate__(self, state):
        state = dict(state)
        blob = state.pop("_weights_safetensors", None)
        super().__setstate__(state)
        if blob is None:
            return
        device = self.device
        self.device = "cpu"
        self._build_model(self._layer_units, np.random.RandomState(0))
        self.device = device
        ckpt = load_checkpoint_bytes(blob, model=self._model)  # weights copied into self._model
        if device != "cpu" and _core.cuda_available():
            self._model.to(device)
        if ckpt["optimizer_state"] is not None:
            lr = self.__dict__.get("_learning_rate")  # the adapted rate ('adaptive', 'invscaling')
            self._make_optimizer()
            self._optimizer.load_state_dict(ckpt["optimizer_state"])
            if lr is not None:
                self._learning_rate = lr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

