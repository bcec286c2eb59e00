"""MLPClassifier: scikit-learn's multi-layer perceptron classifier on mlpcore (see ``mlpcore.sklearn``)."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .. import _core
from ..losses import BCEWithLogitsLoss, CrossEntropyLoss
from ..training import metrics
from .base import LossSpec, _BaseMLP, _num_threads, _stochastic_solver


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
    ``validation_scores_``, ``best_validation_score_``, ``n_iter_``, ``t_``, and ``coefs_`` /
    ``intercepts_`` (writable: assigning them sets the weights).
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
        max_fun=15000,
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
            max_fun=max_fun,
            device=device,
            n_threads=n_threads,
        )

    # ---- targets ----
    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """Returns (X as scikit-learn checked it (n, features), Y encoded for the core, y as given
        (1-D labels or the indicator matrix)). Y: int32 class ids (n,) for multiclass; 0/1 (n, 1)
        for binary (and for a single class, as scikit-learn: it fits one logistic output to 0);
        (n, labels) for multilabel. The fit prepares X and Y for the core through training.data."""
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
            else:
                unseen = np.setdiff1d(classes, self.classes_, assume_unique=True)
                if len(unseen):
                    raise ValueError(
                        f"`y` has classes not in `self.classes_`: {unseen}. `self.classes_` has "
                        f"{self.classes_}. 'y' has {classes}."
                    )
        lb = self._label_binarizer
        Yb = lb.transform(y)
        if lb.y_type_ == "multiclass":
            Y = np.ascontiguousarray(Yb.argmax(axis=1), dtype=np.int32)
        else:
            Y = np.ascontiguousarray(Yb, dtype=np.float32)
        return X, Y, y

    def _n_outputs_for(self, Y: np.ndarray) -> int:
        return len(self.classes_) if Y.ndim == 1 else Y.shape[1]

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _loss_spec(self) -> LossSpec:
        """Softmax cross-entropy on class ids, or logistic loss per output. The core's BCE is a
        mean over all n * outputs elements; scikit-learn's log loss sums over the outputs."""
        if self.out_activation_ == "softmax":
            return LossSpec(CrossEntropyLoss(), 1.0, 1.0)
        return LossSpec(BCEWithLogitsLoss(), 1.0 / self.n_outputs_, float(self.n_outputs_))

    def _decode(self, out: np.ndarray):
        if self.out_activation_ == "softmax":
            return self.classes_[np.argmax(out, axis=1)]
        if self.n_outputs_ == 1:
            if len(self.classes_) == 1:  # one class: always it (scikit-learn's LabelBinarizer)
                return np.repeat(self.classes_, out.shape[0])
            return self.classes_[(out[:, 0] > 0).astype(np.intp)]
        return self._label_binarizer.inverse_transform((out > 0).astype(np.int64))

    @staticmethod
    def _score_function(y, pred, sample_weight=None) -> float:
        return accuracy_score(y, pred, sample_weight=sample_weight)

    @property
    def _loss_kind(self):
        return _core.LossKind.cross_entropy if self.out_activation_ == "softmax" else _core.LossKind.bce_with_logits

    # ---- public API ----
    def fit(self, X, y, sample_weight=None):
        """Fit on X (n_samples, n_features) and y (n_samples,) labels or (n_samples, n_labels)
        multilabel indicators; sample_weight (n_samples,) or None. Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y). ``classes`` (all labels, as ``np.unique(y_all)``) is required on
        the first call and must not change afterwards (multilabel ``y`` needs none). Only for the
        stochastic solvers ('sgd', 'adam'), as scikit-learn."""
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
                f"`classes={np.unique(classes)}` is not the same as on the first call to partial_fit, "
                f"was: {self.classes_}"
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Labels (n_samples,), or the indicator matrix (n_samples, n_labels) for multilabel."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            return self._decode(self._forward(self._check_X(X)))

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities (n_samples, n_classes), columns in the order of ``classes_`` (multilabel:
        one independent probability per label); float32 for float32 X and float32 parameters,
        else float64 (scikit-learn's promotion)."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            X = self._check_X(X)
            out = self._forward(X)
        p = metrics.probabilities(self._loss_kind, out)
        if self.out_activation_ == "logistic" and self.n_outputs_ == 1:
            p = np.hstack([1.0 - p, p])
        return p.astype(self._out_dtype(X), copy=False)

    def predict_log_proba(self, X) -> np.ndarray:
        """log of predict_proba, computed stably from the logits: (n_samples, n_classes)."""
        check_is_fitted(self)
        with _num_threads(self.n_threads):
            X = self._check_X(X)
            out = self._forward(X)
        if self.out_activation_ == "logistic" and self.n_outputs_ == 1:
            out = np.hstack([-out, out])
        return metrics.log_probabilities(self._loss_kind, out).astype(self._out_dtype(X), copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
