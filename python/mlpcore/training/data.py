"""Input preparation for the training entry points: ``Trainer``, the scikit-learn estimators and
the command line all turn what a user passes into what the core reads here, and only here.

    X, y = prepare(X, y, loss_kind, dtype, in_features, out_features)

What is accepted (beyond the core's own policy: float32 / float64, any layout, see ``help(mlpcore)``):

- features: numpy arrays of ints, unsigned ints or bools, pandas DataFrames whose columns are all
  numeric or bool (``pd.get_dummies`` output), sparse matrices (densified), object arrays holding
  only numbers and lists: cast to the model's float dtype (ints beyond 2**24 round in float32).
  A column that cannot be cast (text, categories, dates) is refused with TypeError naming it.
- targets: int class ids (n,) for cross-entropy (bools too); for the other losses targets shaped
  like the output, (n,) for one output, ints and bools cast to the model dtype.
- sample weights (``as_sample_weight``): (n,) reals (floats, ints, bools, a pandas Series), one
  per row, finite; cast to the model dtype.

What is refused, with the shape the user passed (never a reshaped one) and a hint where one helps:
1-D features, row counts that differ, class ids out of range (labels 1..K, one output with
cross-entropy), float class ids (one-hot rows, whole numbers), a (n, 1) column of class ids, text
labels, float16 / complex data, NaN / Inf and a DataFrame's missing values (named by column and
row; unless ``mlpcore.set_check_finite(False)``).

``prepare`` validates everything once; a caller that keeps its result may hand it to the core
with ``validate=False`` (the compiled epoch, evaluate). ``to_array`` only converts (no scan): the
predict path validates what it reads itself.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core

__all__ = ["as_features", "as_sample_weight", "as_targets", "fit_data", "prepare", "to_array"]

_CE = _core.LossKind.cross_entropy
_SKLEARN_HINT = "or use mlpcore.sklearn.MLPClassifier, which encodes any labels"


def _is_dataframe(x) -> bool:
    return hasattr(x, "columns") and hasattr(x, "dtypes") and hasattr(x, "to_numpy")


def _is_series(x) -> bool:
    return hasattr(x, "to_numpy") and hasattr(x, "dtype") and getattr(x, "ndim", 0) == 1


def _is_sparse(x) -> bool:
    return hasattr(x, "toarray") and hasattr(x, "tocsr") and hasattr(x, "nnz")


def _numeric_kind(dtype) -> bool:
    """Numbers and bools, numpy or pandas (nullable Int64 / boolean / Float64 report the same kinds)."""
    return getattr(dtype, "kind", "O") in "biuf"


def _dataframe_to_array(df, name: str, dtype: np.dtype) -> np.ndarray:
    for col, dt in zip(df.columns, df.dtypes):
        if not _numeric_kind(dt):
            raise TypeError(f"{name}: column {col!r} has dtype {dt}, which cannot be cast to {dtype}; encode it "
                            "as numbers first (e.g. pd.get_dummies) or drop it")
    a = np.ascontiguousarray(df.to_numpy(dtype=dtype, na_value=np.nan))
    if _core.get_check_finite() and not np.isfinite(a).all():
        # nullable columns: a missing value became NaN; name the column and row it came from
        rows, cols = np.nonzero(~np.isfinite(a))
        col, label = df.columns[cols[0]], df.index[rows[0]]
        what = "a missing value (NA)" if df.isna().to_numpy()[rows[0], cols[0]] else f"{a[rows[0], cols[0]]}"
        raise ValueError(f"{name}: column {col!r} holds {what} at row {label!r}; fill or drop missing values "
                         "(mlpcore.set_check_finite(False) lets NaN through)")
    return a


def _object_to_array(a: np.ndarray, name: str, dtype: np.dtype) -> np.ndarray:
    """An object array converts when every value is a number or a bool (``df.values`` of mixed
    int / bool columns is one); else TypeError naming the first column that holds something else."""
    flat = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a.reshape(-1, 1)
    for j in range(flat.shape[1]):
        for v in flat[:, j]:
            if not isinstance(v, (int, float, bool, np.number, np.bool_)):
                where = f"column {j}" if a.ndim >= 2 else "it"
                raise TypeError(f"{name}: {where} holds {type(v).__name__} values such as {v!r}, which cannot be "
                                f"cast to {dtype}; encode them as numbers first")
    return a.astype(dtype)


def to_array(x, name: str, dtype) -> np.ndarray:
    """``x`` as a numpy array, with ints, bools, DataFrames, sparse and object arrays of numbers
    cast to ``dtype``. Float arrays pass through untouched (the core converts float32 <-> float64
    and makes them contiguous); nothing is scanned for NaN here. Shapes are kept as given."""
    if type(x) is np.ndarray and x.dtype.kind == "f":  # the common case, first
        return x
    dtype = np.dtype(dtype)
    if _is_dataframe(x):
        return _dataframe_to_array(x, name, dtype)
    if _is_sparse(x):
        x = x.toarray()
    elif _is_series(x):
        x = x.to_numpy()
    a = np.asarray(x)
    if a.dtype.kind in "biu":
        return a.astype(dtype)
    if a.dtype == object and a.size:
        return _object_to_array(a, name, dtype)
    return a


def as_features(X, name: str, dtype, in_features: int = -1) -> np.ndarray:
    """Validated features: C-contiguous (n, in_features) of ``dtype`` (any width when -1)."""
    if X is None:
        raise ValueError(f"{name}: required, got None")
    a = to_array(X, name, dtype)
    if a.ndim != 2:
        hint = f"; for one feature pass {name}.reshape(-1, 1)" if a.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {a.shape}{hint}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: empty data (0 rows)")
    return _core._as_matrix(a, name, dtype, in_features)


def _label_hint(y: np.ndarray, classes: int) -> str:
    """Why class ids are out of range, and the fix (classes < 0: the number of classes is not known)."""
    if classes < 0:
        return f"; map the labels to 0..K-1 {_SKLEARN_HINT}"
    if classes == 1:
        return ("; cross-entropy needs one output per class and the model has 1: use 2 outputs, or "
                "BCEWithLogitsLoss with 0/1 targets")
    lo, hi = int(y.min()), int(y.max())
    if lo >= 1 and hi == classes:
        return f"; the labels look like 1..{classes}: subtract 1 (y - 1) {_SKLEARN_HINT}"
    if hi >= classes:
        return (f"; the model has {classes} outputs, one per class: give it {hi + 1} outputs, or map the labels to "
                f"0..{classes - 1} {_SKLEARN_HINT}")
    return f"; map the labels to 0..{classes - 1} {_SKLEARN_HINT}"


def _one_hot(y: np.ndarray) -> bool:
    """A 2-D array of 0/1 rows with a single 1 each (float one-hot labels)."""
    return y.ndim == 2 and y.shape[1] > 1 and bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def _class_ids(y: np.ndarray, name: str, rows: int, classes: int) -> np.ndarray:
    if y.dtype.kind == "b":
        y = y.astype(np.int32)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and _one_hot(y):
            hint = " (they look one-hot: pass y.argmax(axis=1))"
        elif y.dtype.kind == "f":
            hint = " (they are whole numbers: pass y.astype(int))" if y.size and np.all(np.mod(y, 1) == 0) else ""
        else:
            hint = f"; encode them as 0..K-1 (np.unique(y, return_inverse=True)) {_SKLEARN_HINT}"
        raise TypeError(f"{name}: expected integer class ids for CrossEntropyLoss, got dtype {y.dtype}{hint}")
    if y.ndim == 2 and y.shape[1] == 1:
        column = f" (a column of class ids: pass {name}.ravel())"
    else:
        column = ""
    # The core's rule checks shape and range (one-hot input gets its own hint there); classes < 0
    # (module by module: the number of classes is not known before the forward pass) checks ids
    # >= 0 only. Here the fix is added to its message.
    try:
        return _core._as_labels(y, name, rows, classes)
    except ValueError as e:
        if "out of range" in str(e) or "must be >= 0" in str(e):
            raise ValueError(f"{e}{_label_hint(y, classes)}") from None
        if column:
            raise ValueError(f"{e}{column}") from None
        raise


def as_targets(y, name: str, loss_kind, rows: int, out_features: int, dtype, xname: str = "X") -> np.ndarray:
    """Validated targets for ``rows`` rows: int32 class ids (rows,) for cross-entropy (in
    [0, out_features) when out_features > 0), else C-contiguous (rows, out_features) of ``dtype``."""
    if y is None:
        raise ValueError(f"{name}: required, got None")
    if _is_dataframe(y) and loss_kind != _CE:
        a = _dataframe_to_array(y, name, np.dtype(dtype))
    else:
        a = y if type(y) is np.ndarray else np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if a.ndim == 0 or a.shape[0] != rows:
        raise ValueError(f"{name}: expected {rows} rows (one per row of {xname}), got shape {a.shape}")
    if loss_kind == _CE:
        return _class_ids(a, name, rows, out_features)
    if a.dtype.kind in "biu":
        a = a.astype(dtype)
    if a.ndim == 1:
        if out_features not in (-1, 1):
            raise ValueError(f"{name}: expected targets of shape ({rows}, {out_features}), one column per output, "
                             f"got shape {a.shape}")
        a = a.reshape(rows, 1)
    return _core._as_matrix(a, name, dtype, out_features)


def prepare(X, y, loss_kind, dtype, in_features: int = -1, out_features: int = -1, xname: str = "X",
            yname: str = "y") -> tuple:
    """(X, y) validated once, in the layout the core reads: X C-contiguous (n, in) of ``dtype``;
    y as :func:`as_targets`. in_features / out_features: the model's widths, -1 when unknown
    (a model that runs module by module)."""
    if X is None or y is None:
        raise ValueError(f"{xname}, {yname}: both are required")
    X = as_features(X, xname, dtype, in_features)
    return X, as_targets(y, yname, loss_kind, X.shape[0], out_features, dtype, xname)


def as_sample_weight(w, name: str, rows: int, dtype, xname: str = "X") -> Optional[np.ndarray]:
    """Validated sample weights: C-contiguous (rows,) of ``dtype``, or None for None. The core's
    rule (``_core._as_sample_weight``): 1-D, one weight per row of ``xname``, real numbers, no
    NaN / Inf (unless ``mlpcore.set_check_finite(False)``)."""
    if w is None:
        return None
    if _is_series(w) or _is_dataframe(w):
        w = w.to_numpy()
    return _core._as_sample_weight(w, name, rows, dtype, xname)


def widths(net: Optional["_core.Network"]) -> tuple:
    """(in_features, out_features) of a compiled network, (-1, -1) without one."""
    return (net.in_features, net.out_features) if net is not None else (-1, -1)


def fit_data(X, y, validation_data, validation_split, sample_weight, loss_kind, dtype,
             net: Optional["_core.Network"]) -> tuple:
    """What ``Trainer.fit`` trains and validates on: (X, y, w, (X_val, y_val, w_val) or None), each
    prepared once for the whole fit (w, w_val: sample weights or None). validation_split: the last
    fraction of the rows (before shuffling), as Keras; validation_data: (X_val, y_val) or
    (X_val, y_val, sample_weight_val)."""
    fin, fout = widths(net)
    X, y = prepare(X, y, loss_kind, dtype, fin, fout)
    w = as_sample_weight(sample_weight, "sample_weight", X.shape[0], dtype)
    if validation_split is not None:
        if isinstance(validation_split, bool) or not isinstance(validation_split, (float, int, np.floating)) \
                or not (0.0 < float(validation_split) < 1.0):
            raise ValueError(f"validation_split: expected a fraction in (0, 1), got {validation_split!r}")
        split = int(X.shape[0] * (1.0 - float(validation_split)))
        if split < 1 or split >= X.shape[0]:
            raise ValueError(f"validation_split: {validation_split} of {X.shape[0]} rows leaves an empty "
                             "training or validation set")
        if w is None:
            return X[:split], y[:split], None, (X[split:], y[split:], None)
        return X[:split], y[:split], w[:split], (X[split:], y[split:], w[split:])
    if validation_data is None:
        return X, y, w, None
    if not isinstance(validation_data, (tuple, list)):
        raise TypeError("validation_data: expected (X_val, y_val) or (X_val, y_val, sample_weight_val), got "
                        f"{type(validation_data).__name__}")
    if len(validation_data) not in (2, 3):
        raise ValueError("validation_data: expected (X_val, y_val) or (X_val, y_val, sample_weight_val), got "
                         f"{len(validation_data)} items")
    Xv, yv = prepare(validation_data[0], validation_data[1], loss_kind, dtype, fin, fout, "X_val", "y_val")
    wv = validation_data[2] if len(validation_data) == 3 else None
    return X, y, w, (Xv, yv, as_sample_weight(wv, "sample_weight_val", Xv.shape[0], dtype, "X_val"))
