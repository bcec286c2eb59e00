"""scikit-learn estimators on the mlpcore core: :class:`MLPClassifier` and :class:`MLPRegressor`.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` (same
parameter names and meanings, same fitted attributes, same defaults), trained by the compiled
C++ network: one C++ call per epoch of shuffled mini-batches, the GIL released.

    from mlpcore.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=50, random_state=0).fit(X, y)
    clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)

What is the same as scikit-learn (the update rule, not only the names):
- Initialisation: scikit-learn's Glorot-uniform draws (weights *and* biases in
  ±sqrt(6 / (fan_in + fan_out)), factor 2 for 'logistic'), taken from
  ``check_random_state(random_state)`` in scikit-learn's order, so a given ``random_state``
  starts from exactly scikit-learn's weights.
- Loss and gradient: scikit-learn's gradient is that of  sum_rows_outputs loss / batch_size
  plus  alpha * ||W||^2 / (2 * batch_size).  The core's losses are means over all
  ``batch * outputs`` elements (and MSE has no 1/2), i.e. scikit-learn's data loss times a gain
  ``c``: 2/outputs for squared error, 1 for softmax cross-entropy, 1/outputs for logistic
  (binary / multilabel) outputs. We undo it in the optimizer: SGD runs at ``lr / c`` with
  L2 weight decay ``c * alpha / batch_size``; Adam (invariant to the gradient scale) runs at
  ``lr`` with ``eps * c`` and the same weight decay. PyTorch's SGD momentum (buffer = gradient
  sum, lr outside) equals scikit-learn's velocity form while the learning rate is constant,
  Nesterov included.
- ``loss_curve_`` / ``loss_`` / ``best_loss_`` use scikit-learn's definition: half the mean
  squared error (regression), the log loss summed over outputs (classification), plus
  ``alpha * ||W||^2 / (2 * batch_size)`` summed over the batches of the epoch and divided by
  the number of samples. Stopping on ``tol`` / ``n_iter_no_change``, ``early_stopping`` (a
  stratified ``validation_fraction`` split scored by accuracy or R², best weights restored),
  ``learning_rate`` schedules ('constant', 'invscaling', 'adaptive', SGD only), ``warm_start``
  and ``partial_fit`` follow scikit-learn's rules. Reaching ``max_iter`` emits
  ``sklearn.exceptions.ConvergenceWarning``.

Known, documented differences (all small):
- The network computes in float32 whatever the input dtype; outputs are returned as float64.
- The L2 penalty is a weight decay over every parameter, biases included (scikit-learn
  penalises weights only), and it uses the nominal batch size for the last, smaller batch of an
  epoch. The L2 part of ``loss_curve_`` uses the weights at the end of the epoch.
- Adam: eps is added to sqrt(v_hat) (PyTorch) rather than to sqrt(v) (scikit-learn).
- Shuffling draws its permutations from the core's portable RNG (seeded from
  ``random_state``), not numpy's, so the batch order differs from scikit-learn's.
- Binary problems use one logit with BCEWithLogitsLoss (scikit-learn's logistic output);
  multiclass uses softmax cross-entropy on class ids; multilabel indicator ``y`` uses one
  logistic output per label. ``solver='lbfgs'`` and ``sample_weight`` are not supported.
- Sparse ``X`` is accepted and densified (the core is dense).

Extra parameters: ``device`` ('cpu' or 'cuda') and ``n_threads`` (None keeps the current thread
count; an int sets it with ``mlpcore.set_num_threads`` for the duration of each call and
restores the previous count afterwards).

Pickling stores the network's parameters and the optimizer state as one mlpcore checkpoint
(``mlpcore.io.save_bytes``: safetensors bytes, tensor names as ``model.named_parameters()``),
never the C++ objects. A model pickled with
``device='cuda'`` unpickles on the GPU when one is present and on the CPU otherwise.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _core
from .io import load_checkpoint_bytes, save_bytes
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .nn import Linear, ReLU, Sequential, Sigmoid, Tanh
from .optim import SGD, Adam
from ._validate import is_finite, is_int

__all__ = ["MLPClassifier", "MLPRegressor"]

_HIDDEN_ACTIVATIONS = {"identity": None, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU}
_PREDICT_BATCH = 4096  # rows per forward in predict: bounds the workspace, big enough for GEMM speed


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

    # ---- input handling ----
    @staticmethod
    def _as_float32(X) -> np.ndarray:
        """(n, features) float32 C-contiguous: the layout the core reads without a copy."""
        if sp.issparse(X):
            X = X.toarray()
        return np.ascontiguousarray(X, dtype=np.float32)

    def _check_X(self, X) -> np.ndarray:
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False)
        return self._as_float32(X)

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

    def _forward(self, X32: np.ndarray) -> np.ndarray:
        """Raw network outputs (n, outputs) as float64: logits for the classifier."""
        net = self._model.compiled()
        return net.predict(X32, _PREDICT_BATCH).astype(np.float64)

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

    def _fit_stochastic(self, X: np.ndarray, Y: np.ndarray, y_orig, rng, incremental: bool) -> None:
        loss, c = self._loss_for(self.n_outputs_)
        self._loss_gain = c
        net = self._model.compiled()
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
            X_val, y_val = X[idx_val], y_orig[idx_val]
            X, Y = np.ascontiguousarray(X[idx_train]), np.ascontiguousarray(Y[idx_train])
            self.validation_scores_ = self.validation_scores_ if self.validation_scores_ is not None else []
            if self.best_validation_score_ is None:
                self.best_validation_score_ = -np.inf
            arena = self._model.parameters()[0]._arena.core
            best_params = arena.read(False, 0, arena.numel)
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
        opt_core = self._optimizer._core

        self.n_iter_ = 0
        for _ in range(self.max_iter):
            seed = int(rng.randint(2**31 - 1))  # a fresh shuffle per epoch, drawn from random_state
            try:
                # validate=False: X and Y were checked once above (validate_data, label encoding);
                # this skips the per-epoch O(n) NaN/Inf and label-range scans
                value = net.train_epoch(
                    opt_core, loss.kind, X, Y, batch_size, bool(self.shuffle), seed, self.n_iter_, True,
                    validate=False,
                ).loss
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
                score = self._validation_score(X_val, y_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}")
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = arena.read(False, 0, arena.numel)
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
            arena.write(False, 0, best_params)

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


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier with scikit-learn's API, trained by mlpcore's C++ core.

    Outputs: multiclass -> one logit per class, softmax cross-entropy (``out_activation_ =
    'softmax'``); binary -> one logit, logistic loss (``'logistic'``); multilabel indicator
    ``y`` (n_samples, n_labels) -> one logistic output per label. Labels may be any sortable
    type (ints, strings, ...); ``classes_`` is ``np.unique(y)``.

    Parameters are scikit-learn's (see ``sklearn.neural_network.MLPClassifier``) plus
    ``device`` ('cpu' or 'cuda') and ``n_threads``; see the module docstring for the exact
    correspondence of the update rule.

    Fitted attributes: ``classes_``, ``n_features_in_`` (``feature_names_in_``), ``n_outputs_``,
    ``n_layers_``, ``out_activation_``, ``loss_``, ``loss_curve_``, ``best_loss_``,
    ``validation_scores_``, ``best_validation_score_``, ``n_iter_``, ``t_``, and the read-only
    views ``coefs_`` / ``intercepts_``.
    """

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
            device=device,
            n_threads=n_threads,
        )

    # ---- targets ----
    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """Returns (X float32 (n, features), Y in the core's format, y as given (1-D labels or the
        indicator matrix)). Y: int32 class ids (n,) for multiclass; float32 (n, 1) 0/1 for binary;
        float32 (n, labels) for multilabel."""
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            lb = LabelBinarizer().fit(y)
            self._label_binarizer = lb
            self.classes_ = lb.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous "
                        f"call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                    f"'y' has {classes}."
                )
        lb = self._label_binarizer
        if lb.y_type_ != "multilabel-indicator" and len(self.classes_) < 2:
            raise ValueError(
                f"MLPClassifier needs samples of at least 2 classes; got 1 class ({self.classes_[0]!r})"
            )
        Yb = lb.transform(y)
        if lb.y_type_ == "multiclass":
            Y = np.ascontiguousarray(Yb.argmax(axis=1), dtype=np.int32)
        else:
            Y = np.ascontiguousarray(Yb, dtype=np.float32)
        return self._as_float32(X), Y, y

    def _n_outputs_for(self, Y: np.ndarray) -> int:
        return len(self.classes_) if Y.ndim == 1 else Y.shape[1]

    def _loss_for(self, n_outputs: int):
        """The core loss and its gain c over scikit-learn's loss (see the module docstring)."""
        if self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
            return CrossEntropyLoss(), 1.0
        self.out_activation_ = "logistic"
        return BCEWithLogitsLoss(), 1.0 / n_outputs

    def _sklearn_loss(self, value: float) -> float:
        # core: mean over all elements; scikit-learn: log loss summed over the outputs, mean over rows
        return value if self.out_activation_ == "softmax" else value * self.n_outputs_

    def _decode(self, out: np.ndarray):
        if self.out_activation_ == "softmax":
            return self.classes_[np.argmax(out, axis=1)]
        if self.n_outputs_ == 1:
            return self.classes_[(out[:, 0] > 0).astype(np.intp)]
        return self._label_binarizer.inverse_transform((out > 0).astype(np.int64))

    def _validation_score(self, X_val: np.ndarray, y_val) -> float:
        out = self._forward(X_val)
        if not np.isfinite(out).all():
            return np.nan
        return float(accuracy_score(y_val, self._decode(out)))

    # ---- public API ----
    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and y (n_samples,) labels or (n_samples, n_labels)
        multilabel indicators. Returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y). ``classes`` (all labels, as ``np.unique(y_all)``) is required on
        the first call and must not change afterwards (multilabel ``y`` needs none)."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers; got {self.solver!r}"
            )
        first_call = not hasattr(self, "classes_")
        if first_call:
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer = LabelBinarizer().fit(y)
            else:
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit.")
                self._label_binarizer = LabelBinarizer().fit(np.asarray(classes))
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"`classes={np.unique(classes)!r}` is not the same as on the first call to partial_fit, "
                f"was: {self.classes_!r}"
            )
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Labels (n_samples,), or the indicator matrix (n_samples, n_labels) for multilabel."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            return self._decode(self._forward(self._check_X(X)))

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities (n_samples, n_classes), float64, columns in the order of ``classes_``
        (multilabel: one independent probability per label)."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            out = self._forward(self._check_X(X))
        if self.out_activation_ == "softmax":
            return softmax(out, axis=1)
        p = expit(out)
        return np.hstack([1.0 - p, p]) if self.n_outputs_ == 1 else p

    def predict_log_proba(self, X) -> np.ndarray:
        """log of predict_proba, computed stably from the logits: (n_samples, n_classes)."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            out = self._forward(self._check_X(X))
        if self.out_activation_ == "softmax":
            return log_softmax(out, axis=1)
        if self.n_outputs_ == 1:
            return np.hstack([log_expit(-out), log_expit(out)])
        return log_expit(out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor with scikit-learn's API, trained by mlpcore's C++ core.

    Identity output, squared error (``loss='squared_error'`` is the only choice); ``y`` may be
    (n_samples,) or (n_samples, n_outputs). ``loss_curve_`` is half the mean squared error plus
    the L2 term, as scikit-learn reports it. Other parameters and attributes: see
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
            device=device,
            n_threads=n_threads,
        )

    def _validate_params(self) -> None:
        if self.loss != "squared_error":
            raise ValueError(f"loss: mlpcore's MLPRegressor supports only 'squared_error', got {self.loss!r}")
        super()._validate_params()

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """Returns (X float32 (n, features), Y float32 (n, outputs), y as given (1-D or 2-D))."""
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
        Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32)
        return self._as_float32(X), Y, y

    def _n_outputs_for(self, Y: np.ndarray) -> int:
        return Y.shape[1]

    def _loss_for(self, n_outputs: int):
        self.out_activation_ = "identity"
        return MSELoss(), 2.0 / n_outputs

    def _sklearn_loss(self, value: float) -> float:
        return 0.5 * value  # scikit-learn: 0.5 * mean over all elements

    def _decode(self, out: np.ndarray) -> np.ndarray:
        return out[:, 0] if out.shape[1] == 1 else out

    def _validation_score(self, X_val: np.ndarray, y_val) -> float:
        out = self._forward(X_val)
        if not np.isfinite(out).all():
            return np.nan
        return float(r2_score(y_val, self._decode(out)))

    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_outputs). Returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y); the first call initialises the network."""
        return self._fit(X, y, incremental=True)

    def predict(self, X) -> np.ndarray:
        """Predictions (n_samples,) for one output, else (n_samples, n_outputs); float64."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            return self._decode(self._forward(self._check_X(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
