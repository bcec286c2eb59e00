"""The shared machinery of the scikit-learn estimators (see ``mlpcore.sklearn``): parameters and
their checks, the network in scikit-learn's terms (initial weights, dtype, ``coefs_`` /
``intercepts_``), the fit entry point that hands over to a solver (``stochastic``: 'sgd' and
'adam'; ``lbfgs``), prediction through the one predict path, pickling.

Subclasses (``classifier``, ``regressor``) define the targets: ``_validate_input`` (checks and
encodes y), ``_n_outputs_for``, ``_loss_spec`` (the core loss and how scikit-learn's loss relates
to it), ``_decode`` (raw outputs to predictions) and ``_score_function`` (the validation score)."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, validate_data

from .. import _core
from .._validate import is_finite, is_int
from ..io import load_checkpoint_bytes, save_bytes
from ..losses import _Loss
from ..nn import Linear, ReLU, Sequential, Sigmoid, Tanh
from ..nn.inference import predict as _predict
from ..training import data

_HIDDEN_ACTIVATIONS = {"identity": None, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU}
_SOLVERS = ("lbfgs", "sgd", "adam")
_STOCHASTIC_SOLVERS = ("sgd", "adam")


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


def _stochastic_solver(est) -> bool:
    """``available_if`` condition of ``partial_fit`` (scikit-learn's rule: 'sgd' and 'adam' only)."""
    if est.solver not in _STOCHASTIC_SOLVERS:
        raise AttributeError(
            f"partial_fit is only available for stochastic optimizers. {est.solver} is not stochastic."
        )
    return True


class LossSpec(NamedTuple):
    """How scikit-learn's loss relates to the core loss that trains the network.

    loss: the core loss (mean over elements, or over rows for cross-entropy).
    gain: c in  core gradient = c * scikit-learn's gradient  (the stochastic solvers undo it in
      the optimizer; L-BFGS scales the gradient by 1 / c).
    value_scale: scikit-learn's loss value = value_scale * core value.
    """

    loss: _Loss
    gain: float
    value_scale: float


class _LayerList(list):
    """``coefs_`` / ``intercepts_``: a list of per-layer arrays in scikit-learn's layout. On the CPU
    the arrays are views of the network's parameters (in-place writes reach the model, as they
    reach scikit-learn's); assigning an item (``est.coefs_[0] = W``) writes that layer. Pickles
    and copies as a plain list."""

    def __init__(self, est, name: str, arrays: list):
        super().__init__(arrays)
        self._est, self._name = est, name

    def __setitem__(self, i, value) -> None:
        items = list(self)
        items[i] = value
        if len(items) != len(self):
            raise ValueError(f"{self._name}: cannot change the number of layers ({len(self)})")
        setattr(self._est, self._name, items)  # checks shapes, writes, then reads back the views
        super().__setitem__(slice(None), getattr(self._est, self._name))

    def __reduce__(self):
        return (list, (list(self),))


class _BaseMLP(BaseEstimator):
    """Shared machinery (see the module docs)."""

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
        max_fun=15000,
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
        self.max_fun = max_fun
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

        def number(name: str, lo: float, hi: float = np.inf, lo_open=False, hi_open=False) -> None:
            v = getattr(self, name)
            ok = is_finite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            lo_s, hi_s = ("(" if lo_open else "[") + f"{lo:g}", f"{hi:g}" + (")" if hi_open else "]")
            need(ok, name, f"a number in {lo_s}, {hi_s}" if hi < np.inf else f"a number {'>' if lo_open else '>='} {lo:g}")

        def flag(name: str) -> None:
            need(isinstance(getattr(self, name), (bool, np.bool_)), name, "a bool")

        self._hidden_sizes()
        need(self.activation in _HIDDEN_ACTIVATIONS, "activation", f"one of {sorted(_HIDDEN_ACTIVATIONS)}")
        need(self.solver in _SOLVERS, "solver", "'lbfgs', 'sgd' or 'adam'")
        number("alpha", 0)
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
        number("learning_rate_init", 0, lo_open=True)
        number("power_t", 0)
        need(is_int(self.max_iter) and self.max_iter >= 1, "max_iter", "an int >= 1")
        flag("shuffle")
        number("tol", 0)
        flag("warm_start")
        number("momentum", 0, 1)
        flag("nesterovs_momentum")
        flag("early_stopping")
        number("validation_fraction", 0, 1, hi_open=True)
        number("beta_1", 0, 1, hi_open=True)
        number("beta_2", 0, 1, hi_open=True)
        number("epsilon", 0, lo_open=True)
        need(
            (is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1)
            or self.n_iter_no_change == np.inf,
            "n_iter_no_change",
            "an int >= 1 or np.inf",
        )
        need(is_int(self.max_fun) and self.max_fun >= 1, "max_fun", "an int >= 1")
        _core._as_device(self.device, False)  # the core's device rule ("device: expected 'cpu' or 'cuda', ...")
        need(
            self.n_threads is None or (is_int(self.n_threads) and self.n_threads >= 1),
            "n_threads",
            "None or an int >= 1",
        )

    # ---- input handling: scikit-learn's checks (feature names and counts, its messages), then
    # the package's one input path (training.data) into the layout the core reads ----
    def _check_X(self, X) -> np.ndarray:
        """Features for prediction: checked by scikit-learn (ints become float64), sparse
        densified; float32 or float64 as given (the predict path converts to the network's dtype
        and scans what it reads)."""
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False)
        return data.to_array(X, "X", np.float64)

    @staticmethod
    def _check_sample_weight(sample_weight, X: np.ndarray):
        """(n,) weights in X's dtype (scikit-learn's checks and messages), or None."""
        if sample_weight is None:
            return None
        sw = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        if not np.any(sw):
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return sw

    # ---- the network ----
    def _linears(self) -> list:
        return [m for m in self._model.layers if isinstance(m, Linear)]

    def _build_model(self, layer_units: list, dtype, rng: np.random.RandomState) -> None:
        """Sequential(Linear, act, ..., Linear) of ``dtype`` with scikit-learn's initial weights
        drawn from rng (the same draws, in the same order, as scikit-learn's ``_init_coef``)."""
        act = _HIDDEN_ACTIVATIONS[self.activation]
        factor = 2.0 if self.activation == "logistic" else 6.0
        mods = []
        for i, (fan_in, fan_out) in enumerate(zip(layer_units[:-1], layer_units[1:])):
            lin = Linear(fan_in, fan_out, init="zeros", seed=0, dtype=dtype)
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

    def _forward(self, X: np.ndarray, invariant: bool = True) -> np.ndarray:
        """Raw network outputs (n, outputs) in the network's dtype (logits for the classifier),
        through the one predict path. ``invariant``: in the core's batch-invariant mode, so that a
        row's prediction does not depend on the rows predicted with it (scikit-learn checks that
        predicting a subset gives the rows of predicting the whole, bit for bit)."""
        return _predict(self._model, X, batch_invariant=invariant or None)

    def _out_dtype(self, X: np.ndarray) -> np.dtype:
        """The dtype of predictions for X, as scikit-learn's (X @ coefs_ promotes): float32 only
        when both X and the parameters are float32."""
        return np.result_type(X.dtype, self._model.dtype)

    def _weights_sq_norm(self) -> float:
        """||W||^2 over every weight matrix (not the biases), as scikit-learn's L2 term."""
        with np.errstate(over="ignore"):  # diverged weights give inf, as scikit-learn's float loss would
            return sum(float(np.dot(w, w)) for w in (lin.weight.data.ravel() for lin in self._linears()))

    # ---- training ----
    def _fit(self, X, y, sample_weight, incremental: bool):
        from .lbfgs import fit_lbfgs
        from .stochastic import fit_stochastic

        self._validate_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        X, Y, y_orig = self._validate_input(X, y, incremental, reset=first_pass)
        sw = self._check_sample_weight(sample_weight, X)
        rng = check_random_state(self.random_state)
        with _num_threads(self.n_threads):
            if first_pass:
                self._initialize(X, Y, rng)
            if self.solver == "lbfgs":
                fit_lbfgs(self, X, Y, sw)
            else:
                fit_stochastic(self, X, Y, y_orig, sw, rng, incremental)
        return self

    def _initialize(self, X: np.ndarray, Y: np.ndarray, rng) -> None:
        """A fresh network and the fitted attributes of a first fit. Parameters are float32 for
        float32 X and float64 otherwise, as scikit-learn's; its L-BFGS ends with float64
        parameters whatever X is (scipy's float64 vector is unpacked into them), so 'lbfgs'
        trains in float64."""
        self.n_outputs_ = self._n_outputs_for(Y)
        layer_units = [X.shape[1]] + self._hidden_sizes() + [self.n_outputs_]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        dtype = np.float64 if self.solver == "lbfgs" else X.dtype
        self._build_model(layer_units, dtype, rng)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        if self.solver in _STOCHASTIC_SOLVERS:
            self._init_stochastic_attributes()

    def _init_stochastic_attributes(self) -> None:
        """The stopping state of the stochastic solvers (set by a first fit with one of them, or by
        a warm-started one after 'lbfgs', which has none)."""
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _loss_constants(self, Y: np.ndarray):
        """Per row (n,), a constant of the targets that scikit-learn's loss adds to value_scale *
        the core's loss (its weighted mean over a batch), or None when there is none (all but the
        Poisson deviance)."""

    def _validation_score(self, X_val: np.ndarray, y_val, sample_weight) -> float:
        """scikit-learn's ``_score``: the score function on the predictions, NaN when float
        predictions are not all finite (a diverged regressor)."""
        pred = self._decode(self._forward(X_val, invariant=False))
        if np.issubdtype(pred.dtype, np.floating) and not np.isfinite(pred).all():
            return np.nan
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging fit scores -inf: recorded, not warned
            return float(self._score_function(y_val, pred, sample_weight=sample_weight))

    # ---- fitted parameters in scikit-learn's layout: coefs_[i] (fan_in, fan_out), intercepts_[i] (fan_out,) ----
    def _layers_of(self, name: str) -> list:
        if not hasattr(self, "_model"):
            raise AttributeError(f"{name}: the estimator is not fitted")
        params = [lin.weight if name == "coefs_" else lin.bias for lin in self._linears()]
        return [p.data.T if name == "coefs_" else p.data for p in params]

    def _set_layers(self, name: str, values) -> None:
        """Write every layer's array (scikit-learn's layout, any float or int dtype; converted to
        the network's): shapes are checked for all layers before anything is written."""
        if not hasattr(self, "_model"):
            raise AttributeError(
                f"{name}: the estimator is not fitted; fit it first (e.g. with max_iter=1), then assign "
                f"{name} and fit again with warm_start=True to start from these weights"
            )
        lins = self._linears()
        values = list(values)
        if len(values) != len(lins):
            raise ValueError(f"{name}: expected {len(lins)} arrays (one per layer), got {len(values)}")
        arrays = []
        for i, (lin, v) in enumerate(zip(lins, values)):
            a = np.asarray(v)
            shape = (lin.in_features, lin.out_features) if name == "coefs_" else (lin.out_features,)
            if a.shape != shape:
                raise ValueError(f"{name}[{i}]: expected shape {shape}, got {a.shape}")
            arrays.append(a.T if name == "coefs_" else a)
        for lin, a in zip(lins, arrays):
            (lin.weight if name == "coefs_" else lin.bias).data = a

    coefs_ = property(
        lambda self: _LayerList(self, "coefs_", self._layers_of("coefs_")),
        lambda self, v: self._set_layers("coefs_", v),
        doc="Weights per layer, (fan_in, fan_out) as scikit-learn's; writable (see _LayerList).",
    )
    intercepts_ = property(
        lambda self: _LayerList(self, "intercepts_", self._layers_of("intercepts_")),
        lambda self, v: self._set_layers("intercepts_", v),
        doc="Biases per layer, (fan_out,); writable (see _LayerList).",
    )

    # ---- pickling: parameters and optimizer state travel as mlpcore checkpoint bytes ----
    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        model = state.pop("_model", None)
        opt = state.pop("_optimizer", None)
        if model is not None:
            # any fitted state pickles, as scikit-learn's own estimators do: non-finite weights too
            state["_weights_safetensors"] = save_bytes(model, opt, allow_nonfinite=True)
            state["_weights_dtype"] = np.dtype(model.dtype).str
        return state

    def __setstate__(self, state):
        state = dict(state)
        blob = state.pop("_weights_safetensors", None)
        dtype = np.dtype(state.pop("_weights_dtype", "<f4"))
        super().__setstate__(state)
        if blob is None:
            return
        device = self.device
        self.device = "cpu"
        self._build_model(self._layer_units, dtype, np.random.RandomState(0))
        self.device = device
        ckpt = load_checkpoint_bytes(blob, model=self._model)  # weights copied into self._model
        if device != "cpu" and _core.cuda_available():
            self._model.to(device)
        if ckpt["optimizer_state"] is not None:
            from .stochastic import make_optimizer

            lr = self.__dict__.get("_learning_rate")  # the adapted rate ('adaptive', 'invscaling')
            make_optimizer(self)
            self._optimizer.load_state_dict(ckpt["optimizer_state"])
            if lr is not None:
                self._learning_rate = lr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
