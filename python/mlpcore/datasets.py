"""Toy data sets, seeded and generated in numpy, plus small data helpers.

Classification problems return ``X`` float32 ``(n, features)`` and ``y`` int64 class ids
``(n,)`` (what ``CrossEntropyLoss`` takes); regression problems return ``y`` float32 ``(n, 1)``
(shaped like the prediction, what ``MSELoss`` takes). Every generator takes ``seed`` and gives
the same arrays for the same seed on every platform (numpy's PCG64 ``default_rng``); rows are
shuffled, and classes are balanced (sizes differ by at most one) unless stated otherwise.

- :func:`make_moons`, :func:`make_circles`, :func:`make_spirals`, :func:`make_triangle`:
  2-D classification (the lecture pictures);
- :func:`make_linear_regression`, :func:`make_logistic`: linear models' data;
- :func:`make_function`: 1-D function fitting (universal-approximation demos);
- :func:`load_digits`: scikit-learn's bundled 8x8 digits (needs the ``sklearn`` extra);
- :func:`load_csv`, :func:`load_csv_table` (columns by name), :func:`csv_header`, :func:`load_npz`:
  your own data;
- :func:`train_test_split`, :class:`StandardScaler`, :func:`standardize`.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Callable, NamedTuple, Optional, Sequence, Union

import numpy as np

from ._validate import is_int

__all__ = [
    "CsvTable", "StandardScaler", "csv_header", "load_csv", "load_csv_table", "load_digits", "load_npz", "make_circles",
    "make_function", "make_linear_regression",
    "make_logistic", "make_moons", "make_spirals", "make_triangle", "standardize", "train_test_split",
]


def _check_n(n_samples, minimum: int = 1) -> int:
    if not is_int(n_samples) or n_samples < minimum:
        raise ValueError(f"n_samples: expected an int >= {minimum}, got {n_samples!r}")
    return int(n_samples)


def _check_noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating)) or not noise >= 0:
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    return float(noise)


def _split_sizes(n: int, k: int) -> list:
    """n rows over k classes, sizes differing by at most one."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _shuffled(rng: np.random.Generator, X: np.ndarray, y: np.ndarray) -> tuple:
    perm = rng.permutation(len(X))
    return np.ascontiguousarray(X[perm], dtype=np.float32), np.ascontiguousarray(y[perm])


def make_moons(n_samples: int = 500, noise: float = 0.1, seed: int = 0) -> tuple:
    """Two interleaving half circles: X (n, 2) float32, y (n,) int64 in {0, 1}.

    Class 0 is the upper arc (cos t, sin t), class 1 the lower (1 - cos t, 0.5 - sin t),
    t in [0, pi]; Gaussian noise of std ``noise`` is added to every coordinate.
    """
    n = _check_n(n_samples, 2)
    noise = _check_noise(noise)
    rng = np.random.default_rng(seed)
    n0, n1 = _split_sizes(n, 2)
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1), np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    X = X + rng.normal(0.0, noise, X.shape) if noise > 0 else X
    y = np.repeat(np.arange(2, dtype=np.int64), [n0, n1])
    return _shuffled(rng, X, y)


def make_circles(n_samples: int = 500, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> tuple:
    """Two concentric circles: X (n, 2) float32, y (n,) int64; class 0 the outer circle of
    radius 1, class 1 the inner one of radius ``factor`` (in (0, 1)); Gaussian noise ``noise``."""
    n = _check_n(n_samples, 2)
    noise = _check_noise(noise)
    if not (0 < factor < 1):
        raise ValueError(f"factor: expected a value in (0, 1), got {factor!r}")
    rng = np.random.default_rng(seed)
    n0, n1 = _split_sizes(n, 2)
    t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0, 2 * np.pi, n1, endpoint=False)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1), factor * np.stack([np.cos(t1), np.sin(t1)], 1)])
    X = X + rng.normal(0.0, noise, X.shape) if noise > 0 else X
    y = np.repeat(np.arange(2, dtype=np.int64), [n0, n1])
    return _shuffled(rng, X, y)


def make_spirals(n_samples: int = 600, n_arms: int = 3, noise: float = 0.2, turns: float = 1.0,
                 seed: int = 0) -> tuple:
    """``n_arms`` interleaved spiral arms, one class each: X (n, 2) float32, y (n,) int64 in
    [0, n_arms). Arm k: radius r from 0 to 1, angle ``2 pi (turns r + k / n_arms)`` plus
    Gaussian angle noise of std ``noise`` * r (the CS231n picture)."""
    n = _check_n(n_samples, 2)
    noise = _check_noise(noise)
    if not is_int(n_arms) or n_arms < 2:
        raise ValueError(f"n_arms: expected an int >= 2, got {n_arms!r}")
    rng = np.random.default_rng(seed)
    sizes = _split_sizes(n, int(n_arms))
    parts = []
    for k, m in enumerate(sizes):
        r = np.linspace(0.0, 1.0, m)
        theta = 2 * np.pi * (turns * r + k / n_arms) + rng.normal(0.0, 1.0, m) * noise * r
        parts.append(np.stack([r * np.cos(theta), r * np.sin(theta)], 1))
    y = np.repeat(np.arange(int(n_arms), dtype=np.int64), sizes)
    return _shuffled(rng, np.concatenate(parts), y)


_TRIANGLE = ((-0.8, -0.7), (0.8, -0.7), (0.0, 0.8))


def _inside_triangle(P: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Boolean (n,): points P (n, 2) strictly inside the triangle V (3, 2) (same-side test)."""
    def side(a, b):
        return (b[0] - a[0]) * (P[:, 1] - a[1]) - (b[1] - a[1]) * (P[:, 0] - a[0])
    s = [side(V[0], V[1]), side(V[1], V[2]), side(V[2], V[0])]
    return ((s[0] > 0) & (s[1] > 0) & (s[2] > 0)) | ((s[0] < 0) & (s[1] < 0) & (s[2] < 0))


def make_triangle(n_samples: int = 1000, vertices: Optional[Sequence] = None, noise: float = 0.0,
                  seed: int = 0) -> tuple:
    """Inside (class 1) versus outside (class 0) a triangle, points in the square [-1, 1]^2:
    X (n, 2) float32, y (n,) int64, half of each class.

    ``vertices`` is a (3, 2) sequence (default a wide triangle inside the square). Inside points
    are uniform over the triangle, outside points uniform over the rest of the square. ``noise``
    flips each label with that probability (label noise, in [0, 0.5)).
    """
    n = _check_n(n_samples, 2)
    noise = _check_noise(noise)
    if noise >= 0.5:
        raise ValueError(f"noise: the label-flip probability must be < 0.5, got {noise!r}")
    V = np.asarray(_TRIANGLE if vertices is None else vertices, dtype=np.float64)
    if V.shape != (3, 2):
        raise ValueError(f"vertices: expected 3 points of 2 coordinates, got shape {V.shape}")
    area = 0.5 * abs((V[1, 0] - V[0, 0]) * (V[2, 1] - V[0, 1]) - (V[2, 0] - V[0, 0]) * (V[1, 1] - V[0, 1]))
    if area < 1e-6:
        raise ValueError("vertices: the triangle is degenerate (zero area)")
    rng = np.random.default_rng(seed)
    n_out, n_in = _split_sizes(n, 2)
    # inside: uniform barycentric sampling (reflect the unit square's upper half)
    u, v = rng.random(n_in), rng.random(n_in)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    inside = V[0] + u[:, None] * (V[1] - V[0]) + v[:, None] * (V[2] - V[0])
    # outside: rejection sampling from the square
    outside = np.empty((0, 2))
    while len(outside) < n_out:
        P = rng.uniform(-1, 1, (2 * n_out + 16, 2))
        outside = np.concatenate([outside, P[~_inside_triangle(P, V)]])
    X = np.concatenate([outside[:n_out], inside])
    y = np.repeat(np.arange(2, dtype=np.int64), [n_out, n_in])
    if noise > 0:
        y = np.where(rng.random(n) < noise, 1 - y, y)
    return _shuffled(rng, X, y)


def make_linear_regression(n_samples: int = 200, n_features: int = 1, noise: float = 0.1, bias: float = 0.0,
                           coef: Optional[Sequence[float]] = None, seed: int = 0, return_coef: bool = False):
    """y = X @ coef + bias + noise: X (n, n_features) float32 ~ N(0, 1), y (n, 1) float32.

    ``coef`` defaults to draws from N(0, 1); ``return_coef=True`` also returns it (float64 (f,)).
    """
    n = _check_n(n_samples)
    noise = _check_noise(noise)
    f = _check_n(n_features)
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, f) if coef is None else np.asarray(coef, dtype=np.float64).reshape(-1)
    if w.shape != (f,):
        raise ValueError(f"coef: expected {f} values, got {w.size}")
    X = rng.normal(0.0, 1.0, (n, f))
    y = X @ w + bias + (rng.normal(0.0, noise, n) if noise > 0 else 0.0)
    out = (X.astype(np.float32), y.reshape(n, 1).astype(np.float32))
    return out + (w,) if return_coef else out


def make_logistic(n_samples: int = 400, n_features: int = 2, scale: float = 4.0, seed: int = 0) -> tuple:
    """Two classes from a logistic model: X (n, f) float32 ~ N(0, 1), y (n,) int64 drawn as
    Bernoulli(sigmoid(scale * X @ w)) for a random unit vector w. A large ``scale`` makes it
    (nearly) linearly separable; classes are balanced only in expectation."""
    n = _check_n(n_samples)
    f = _check_n(n_features)
    if not scale > 0:
        raise ValueError(f"scale: expected a number > 0, got {scale!r}")
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, f)
    w /= np.linalg.norm(w)
    X = rng.normal(0.0, 1.0, (n, f))
    p = 1.0 / (1.0 + np.exp(-scale * (X @ w)))
    y = (rng.random(n) < p).astype(np.int64)
    return X.astype(np.float32), y


_FUNCTIONS = {
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "abs": np.abs, "square": np.square,
    "step": lambda x: (x > 0).astype(np.float64), "sinc": lambda x: np.sinc(x / np.pi),
}


def make_function(fn: Union[str, Callable] = "sin", n_samples: int = 200, interval: tuple = (-math.pi, math.pi),
                  noise: float = 0.0, seed: int = 0, grid: bool = False) -> tuple:
    """Samples of a 1-D function: X (n, 1) float32 in ``interval``, y = fn(X) + noise, (n, 1) float32.

    fn: one of 'sin', 'cos', 'tanh', 'abs', 'square', 'step', 'sinc', or a numpy-vectorised
    callable. X is uniform random, or an even grid with ``grid=True`` (sorted in both cases).
    """
    n = _check_n(n_samples)
    noise = _check_noise(noise)
    if isinstance(fn, str):
        if fn not in _FUNCTIONS:
            raise ValueError(f"fn: expected one of {sorted(_FUNCTIONS)} or a callable, got {fn!r}")
        f = _FUNCTIONS[fn]
    elif callable(fn):
        f = fn
    else:
        raise TypeError(f"fn: expected a name or a callable, got {type(fn).__name__}")
    lo, hi = (float(v) for v in interval)
    if not lo < hi:
        raise ValueError(f"interval: expected (low, high) with low < high, got {interval!r}")
    rng = np.random.default_rng(seed)
    x = np.linspace(lo, hi, n) if grid else np.sort(rng.uniform(lo, hi, n))
    y = np.asarray(f(x), dtype=np.float64).reshape(-1)
    if y.shape != (n,):
        raise ValueError(f"fn: expected one output per input ({n}), got shape {y.shape}")
    if noise > 0:
        y = y + rng.normal(0.0, noise, n)
    return x.reshape(n, 1).astype(np.float32), y.reshape(n, 1).astype(np.float32)


def load_digits(scale: Optional[str] = "unit") -> tuple:
    """scikit-learn's 8x8 handwritten digits: X (1797, 64) float32, y (1797,) int64 in [0, 10).

    scale: 'unit' divides the 0..16 pixel values by 16 (to [0, 1]); 'standard' standardises each
    feature over the whole set (for a clean experiment, split first and use StandardScaler on
    the training part); None keeps 0..16.
    """
    if scale not in ("unit", "standard", None):
        raise ValueError(f"scale: expected 'unit', 'standard' or None, got {scale!r}")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn: pip install mlpcore[sklearn]") from e
    d = sk_load_digits()
    X = d.data.astype(np.float32)
    if scale == "unit":
        X /= 16.0
    elif scale == "standard":
        X = StandardScaler().fit_transform(X)
    return X, d.target.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def train_test_split(X: np.ndarray, y: np.ndarray, test_size: Union[float, int] = 0.2, seed: int = 0,
                     stratify: Optional[np.ndarray] = None, shuffle: bool = True) -> tuple:
    """Split rows into ``(X_train, X_test, y_train, y_test)`` (scikit-learn's order).

    test_size: a fraction in (0, 1) or a row count. stratify: labels (n,) whose class
    proportions both parts keep (each class is split separately). shuffle=False takes the last
    rows as the test set (not with stratify).
    """
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"y: expected {n} rows like X, got {len(y)}")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"test_size: expected a fraction or a row count, got {test_size!r}")
    if isinstance(test_size, (float, np.floating)):
        if not 0 < test_size < 1:
            raise ValueError(f"test_size: expected a fraction in (0, 1), got {test_size!r}")
        n_test = int(math.ceil(test_size * n))
    else:
        n_test = int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"test_size: leaves {n_test} test rows out of {n}; both parts need at least one row")
    rng = np.random.default_rng(seed)
    if stratify is not None:
        if not shuffle:
            raise ValueError("stratify: needs shuffle=True")
        s = np.asarray(stratify)
        if len(s) != n:
            raise ValueError(f"stratify: expected {n} labels, got {len(s)}")
        classes, inv = np.unique(s, return_inverse=True)
        # per class: its share of n_test, rounded, then the remainder handed out by largest fraction
        counts = np.bincount(inv, minlength=len(classes))
        exact = counts * n_test / n
        take = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - take), kind="stable")[: n_test - take.sum()]:
            take[i] += 1
        test = np.concatenate([rng.permutation(np.flatnonzero(inv == c))[:take[c]] for c in range(len(classes))])
        test = rng.permutation(test)
        mask = np.zeros(n, bool)
        mask[test] = True
        train = rng.permutation(np.flatnonzero(~mask))
    else:
        order = rng.permutation(n) if shuffle else np.arange(n)
        train, test = order[: n - n_test], order[n - n_test:]
    return X[train], X[test], y[train], y[test]


class StandardScaler:
    """Per-feature standardisation: (X - mean_) / scale_, with statistics from ``fit``.
    Constant features get scale_ 1 (they map to 0). Keeps the input's float dtype (float32 for
    anything else)."""

    def __init__(self):
        self.mean_: Optional[np.ndarray] = None
        self.scale_: Optional[np.ndarray] = None

    def fit(self, X: np.ndarray) -> "StandardScaler":
        X = _as_2d(X, "X")
        self.mean_ = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def _check(self, X) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("StandardScaler: call fit before transform")
        X = _as_2d(X, "X")
        if X.shape[1] != len(self.mean_):
            raise ValueError(f"X: expected {len(self.mean_)} features, got {X.shape[1]}")
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        return ((X - self.mean_) / self.scale_).astype(X.dtype)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        return (X * self.scale_ + self.mean_).astype(X.dtype)

    def state_dict(self) -> dict:
        """JSON-able statistics (for a checkpoint's ``extra``)."""
        if self.mean_ is None:
            raise RuntimeError("StandardScaler: call fit before state_dict")
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_state_dict(cls, d: dict) -> "StandardScaler":
        s = cls()
        s.mean_ = np.asarray(d["mean"], dtype=np.float64)
        s.scale_ = np.asarray(d["scale"], dtype=np.float64)
        if s.mean_.shape != s.scale_.shape or s.mean_.ndim != 1:
            raise ValueError("StandardScaler state: mean and scale must be 1-D of equal length")
        return s


def _as_2d(X, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (samples, features), got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    return X


def standardize(X_train: np.ndarray, X_test: Optional[np.ndarray] = None) -> tuple:
    """Standardise with the training set's statistics: ``(X_train_s, X_test_s)``, or
    ``(X_train_s, None)`` without a test set."""
    sc = StandardScaler().fit(X_train)
    return sc.transform(X_train), None if X_test is None else sc.transform(X_test)


# ----------------------------------------------------------------------------------------------
# user data
# ----------------------------------------------------------------------------------------------

def _labels(col: np.ndarray, return_classes: bool):
    """A target column (strings) -> int64 class ids if every value is an integer, float32 (n, 1)
    if numeric, else class ids of the sorted distinct strings. Returns (y, classes or None)."""
    try:
        v = col.astype(np.float64)
    except ValueError:
        classes, y = np.unique(col, return_inverse=True)
        return y.astype(np.int64), [str(c) for c in classes]
    if np.all(np.isfinite(v)) and np.all(v == np.round(v)) and np.all(v >= 0):
        return v.astype(np.int64), None
    return v.astype(np.float32).reshape(-1, 1), None


def _finish(X: np.ndarray, y, classes, return_classes: bool):
    return (X, y, classes) if return_classes else (X, y)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


class CsvTable(NamedTuple):
    """What :func:`load_csv_table` read: X float32 (n, features), y (None without a target),
    the class names of text labels (else None), the feature columns' header names and the
    target's (None without a header row)."""

    X: np.ndarray
    y: Optional[np.ndarray]
    classes: Optional[list]
    features: Optional[list]
    target: Optional[str]


def _header(row0: list, row1: Optional[list]) -> Optional[list]:
    """The names in row0 if it is a header: one of its fields is text where row1 has a number
    (so a first data row with a text label is not mistaken for one)."""
    num0 = [_is_number(c) for c in row0]
    num1 = [_is_number(c) for c in row1] if row1 is not None else [True] * len(num0)
    return [c.strip() for c in row0] if any(b and not a for a, b in zip(num0, num1)) else None


def csv_header(path: Union[str, os.PathLike], delimiter: str = ",") -> Optional[list]:
    """The column names of a CSV file's header row (read from its first two rows), or None when
    its first row is data (see :func:`load_csv`)."""
    rows = []
    with open(os.fspath(path), newline="") as f:
        for r in csv.reader(f, delimiter=delimiter):
            if r and any(c.strip() for c in r):
                rows.append(r)
                if len(rows) == 2:
                    break
    return _header(rows[0], rows[1] if len(rows) > 1 else None) if rows else None


def _read_csv(path: str, delimiter: str) -> tuple:
    """(header names or None (:func:`_header`), cells as a 2-D str array, each data row's line
    number in the file). Blank lines are skipped."""
    with open(path, newline="") as f:
        rows = [(i + 1, r) for i, r in enumerate(csv.reader(f, delimiter=delimiter)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    header = _header(rows[0][1], rows[1][1] if len(rows) > 1 else None)
    if header is not None:
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    width = len(rows[0][1])
    for line, r in rows:
        if len(r) != width:
            raise ValueError(f"{path}: row {line} has {len(r)} fields, expected {width}")
    if header is not None and len(header) != width:
        raise ValueError(f"{path}: the header has {len(header)} names but the rows have {width} fields")
    return header, np.array([[c.strip() for c in r] for _, r in rows]), [line for line, _ in rows]


def _column(spec, header: Optional[list], width: int, path: str, what: str) -> int:
    """The index of a column given by header name or by index (negative counts from the end)."""
    if isinstance(spec, str):
        if header is None or spec not in header:
            raise ValueError(f"{what}: no column named {spec!r} in {path} "
                             f"(header: {', '.join(header) if header is not None else 'none'})")
        return header.index(spec)
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if not -width <= spec < width:
            raise ValueError(f"{what}: column {spec} out of range for {width} columns")
        return int(spec) % width
    raise TypeError(f"{what}: expected a column index or a column name, got {spec!r}")


def _numeric(cells: np.ndarray, cols: list, header: Optional[list], lines: list, path: str) -> np.ndarray:
    """cells[:, cols] as float32; a cell that is not a number is named by row and column."""
    try:
        return cells[:, cols].astype(np.float32)
    except ValueError:
        pass
    for j in cols:
        for i, c in enumerate(cells[:, j]):
            if not _is_number(c):
                name = f"{header[j]!r} ({j + 1})" if header is not None else str(j + 1)
                raise ValueError(f"{path}: row {lines[i]}, column {name}: {str(c)!r} is not a number "
                                 "(feature columns must be numeric)") from None
    raise AssertionError("unreachable: a cell failed to convert but every cell is a number")


def load_csv_table(path: Union[str, os.PathLike], target: Union[int, str, None] = -1,
                   features: Optional[Sequence[str]] = None, drop: Sequence[Union[int, str]] = (),
                   delimiter: str = ",") -> CsvTable:
    """Read a numeric CSV file by column: a :class:`CsvTable` (X, y, classes, features, target).

    target: the label column, by index (negative counts from the end) or header name; None when
    the file has no labels. features: the header names of the feature columns, in this order
    (other columns are ignored; a name missing from the file raises ValueError naming it);
    default: every column but the target and ``drop``. drop: columns (names or indices) left
    out of the default features. Labels follow :func:`load_csv`'s rules. A cell that is not a
    number raises ValueError naming its row (line of the file) and column.
    """
    src = os.fspath(path)
    header, cells, lines = _read_csv(src, delimiter)
    width = cells.shape[1]
    t = None if target is None else _column(target, header, width, src, "target")
    if features is not None:
        if header is None:
            raise ValueError(f"{src}: the file has no header row; columns named {list(features)} are needed")
        missing = [f for f in features if f not in header]
        if missing:
            raise ValueError(f"{src}: no column named {', '.join(map(repr, missing))} "
                             f"(header: {', '.join(header)}; needed: {', '.join(features)})")
        feats = [header.index(f) for f in features]
    else:
        dropped = {_column(d, header, width, src, "drop") for d in drop}
        feats = [j for j in range(width) if j != t and j not in dropped]
    if not feats:
        raise ValueError(f"{src}: no feature columns besides the target")
    X = _numeric(cells, feats, header, lines, src)
    y, classes = (None, None) if t is None else _labels(cells[:, t], True)
    names = [header[j] for j in feats] if header is not None else None
    return CsvTable(X, y, classes, names, header[t] if header is not None and t is not None else None)


def load_csv(path: Union[str, os.PathLike], target: Union[int, str, None] = -1, delimiter: str = ",",
             return_classes: bool = False):
    """Read a numeric CSV file: ``(X, y)``, X float32 (n, features).

    target: the label column, by index (negative counts from the end) or by header name; None
    when the file has no labels (y is None). The first row is a header when it has text where
    the second row has numbers.
    The labels become int64 class ids (n,) when they are non-negative integers or strings
    (sorted names; ``return_classes=True`` also returns the names), float32 (n, 1) otherwise
    (regression). :func:`load_csv_table` also selects columns by name and returns their names.
    """
    t = load_csv_table(path, target=target, delimiter=delimiter)
    return _finish(t.X, t.y, t.classes, return_classes)


def load_npz(path: Union[str, os.PathLike], target: Union[str, int, None] = "y", features: str = "X",
             return_classes: bool = False):
    """Read a ``.npz`` archive: ``(X, y)``, X float32 (n, features).

    target: the array's key (default 'y'); or a column index into the feature array; or None
    (y is None). features: the key of the feature array (default 'X'; an archive holding a single
    array may use any key). Labels follow :func:`load_csv`'s rules.
    """
    with np.load(os.fspath(path), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    src = os.fspath(path)
    if features in arrays:
        A = arrays[features]
    elif len(arrays) == 1 or (isinstance(target, str) and len(arrays) == 2 and target in arrays):
        A = next(v for k, v in arrays.items() if k != target)
    else:
        raise ValueError(f"features: no array named {features!r} in {src} (keys: {sorted(arrays)})")
    if A.ndim != 2:
        raise ValueError(f"{src}: the feature array must be 2-D (samples, features), got shape {A.shape}")
    y = None
    if isinstance(target, str):
        if target not in arrays:
            raise ValueError(f"target: no array named {target!r} in {src} (keys: {sorted(arrays)})")
        y = arrays[target]
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not -A.shape[1] <= target < A.shape[1]:
            raise ValueError(f"target: column {target} out of range for {A.shape[1]} columns")
        t = int(target) % A.shape[1]
        y, A = A[:, t], np.delete(A, t, axis=1)
    elif target is not None:
        raise TypeError(f"target: expected an array key, a column index or None, got {target!r}")
    if A.dtype.kind not in "fiub":
        raise ValueError(f"{src}: the feature array must be numeric, got dtype {A.dtype}")
    X = np.ascontiguousarray(A, dtype=np.float32)
    if y is None:
        return _finish(X, None, None, return_classes)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{src}: expected one label per row ({len(X)}), got shape {y.shape}")
    y, classes = _labels(y.astype(str) if y.dtype.kind in "US" else y, return_classes)
    return _finish(X, y, classes, return_classes)
