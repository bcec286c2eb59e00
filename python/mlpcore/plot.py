"""Plots for training runs and toy problems (needs the ``plot`` extra: matplotlib).

Every function draws on a new ``matplotlib.figure.Figure`` rendered by the Agg canvas — pyplot
is never imported and the global backend is left alone, so this works without a display and
does not disturb a notebook — saves it as an image when ``path`` is given, and returns it.

- :func:`plot_history`: loss and metric curves (train and validation) per epoch;
- :func:`plot_decision_boundary`: the class regions of a 2-D classifier, with the data;
- :func:`plot_function_fit`: a 1-D regression model's curve over the data.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np


def _figure(ncols: int = 1, size: tuple = (5.0, 4.0)):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("mlpcore.plot needs matplotlib: pip install mlpcore[plot]") from e
    fig = Figure(figsize=(size[0] * ncols, size[1]), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _save(fig, path) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)


def _same_curve(h: dict, a: str, b: str) -> bool:
    """Whether the logged series a and b are the same numbers (MSELoss logs "mse" equal to "loss")."""
    if a not in h or b not in h:
        return a not in h and b not in h
    u, v = np.asarray(h[a], dtype=np.float64).reshape(-1), np.asarray(h[b], dtype=np.float64).reshape(-1)
    return u.shape == v.shape and bool(np.allclose(u, v, rtol=1e-6, atol=0.0, equal_nan=True))


_TITLES = {"lr": "learning rate"}


def plot_history(history: Any, path: Optional[Union[str, os.PathLike]] = None):
    """Curves of every logged quantity per epoch: one panel for the loss, one per metric, each
    with its ``val_`` twin when present (a legend tells them apart; a panel with one training
    curve, such as the learning rate that LR schedules log, has none). A metric that repeats the loss (MSELoss
    logs "mse" equal to "loss") gets no panel of its own.

    history: a ``History`` (anything with a ``.history`` dict) or a dict such as
    ``{"loss": [...], "val_loss": [...], "accuracy": [...], "val_accuracy": [...]}``.
    """
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or not h:
        raise TypeError(f"history: expected a History or a non-empty dict of per-epoch lists, got {type(history).__name__}")
    keys = [k for k in h if not k.startswith("val_")]
    keys += [k[4:] for k in h if k.startswith("val_") and k[4:] not in h]
    keys = [k for k in keys if k == "loss" or not (_same_curve(h, k, "loss") and _same_curve(h, "val_" + k, "val_loss"))]
    keys.sort(key=lambda k: (k != "loss", k))
    fig, axes = _figure(len(keys))
    for ax, k in zip(axes, keys):
        curves = [(name, style) for name, style in ((k, "-"), ("val_" + k, "--")) if name in h]
        for name, style in curves:
            v = np.asarray(h[name], dtype=np.float64).reshape(-1)
            ax.plot(np.arange(1, len(v) + 1), v, style, marker="o" if len(v) < 20 else None,
                    label="validation" if name.startswith("val_") else "train")
        ax.set_xlabel("epoch")
        ax.set_ylabel(_TITLES.get(k, k))
        ax.set_title(_TITLES.get(k, k))
        ax.grid(alpha=0.3)
        if len(curves) > 1 or curves[0][0].startswith("val_"):  # one training curve needs no legend
            ax.legend()
    _save(fig, path)
    return fig


def _predict_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function X (n, f) float32 -> outputs, from a mlpcore Module (eval mode, through the one
    predict path), an object with ``predict`` (Trainer, scikit-learn estimator) or a callable."""
    from .nn import Module
    from .nn.inference import predict

    if isinstance(model, Module):
        return lambda X: predict(model, X)
    if hasattr(model, "predict") and callable(model.predict):
        return model.predict
    if callable(model):
        return model
    raise TypeError(f"model: expected a mlpcore Module, an object with predict() or a callable, "
                    f"got {type(model).__name__}")


def _label_ids(y: np.ndarray, class_names: Optional[Sequence]) -> tuple:
    """(class ids (n,) int64, class names or None) of labels y: ints and bools are ids (named by
    class_names when given); text or other labels are named by themselves, in class_names' order
    when given, else sorted (as mlpcore.datasets.load_csv and scikit-learn's classes_ order them)."""
    if y.dtype.kind in "iub":
        return y.astype(np.int64), None if class_names is None else [str(c) for c in class_names]
    if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0) and np.all(y >= 0):
        return y.astype(np.int64), None if class_names is None else [str(c) for c in class_names]
    names = [str(c) for c in (class_names if class_names is not None else np.unique(y.astype(str)))]
    return _ids_of(y, names, "y"), names


def _ids_of(labels: np.ndarray, names: list, what: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    text = labels.astype(str).tolist()
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(f"{what}: labels {unknown[:5]} are not among the classes {names}")
    return np.array([index[t] for t in text], dtype=np.int64)


def _classes(out: np.ndarray, names: Optional[list]) -> np.ndarray:
    """Class ids from a prediction: int ids pass through, text labels are looked up in ``names``,
    (n, C>1) scores -> argmax, one float column -> a logit thresholded at 0."""
    out = np.asarray(out)
    if out.dtype.kind in "iub":
        return out.reshape(-1).astype(np.int64)
    if out.dtype.kind in "USO":
        if names is None:
            raise ValueError("model: predicts text labels but y holds class ids; pass class_names")
        return _ids_of(out.reshape(-1), names, "model predictions")
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(axis=1)
    return (out.reshape(-1) > 0).astype(np.int64)


def _class_colors(k: int) -> list:
    """k colours, class i in the i-th: tab10's in order (C0, C1, ...), tab20's beyond 10 classes,
    evenly spaced hues beyond 20."""
    from matplotlib import colormaps

    if k <= 10:
        return list(colormaps["tab10"].colors[:k])
    if k <= 20:
        return list(colormaps["tab20"].colors[:k])
    return [colormaps["hsv"](i / k) for i in range(k)]


def plot_decision_boundary(model: Any, X: np.ndarray, y: np.ndarray, path: Optional[Union[str, os.PathLike]] = None,
                           resolution: int = 200, title: Optional[str] = None, ax: Any = None,
                           class_names: Optional[Sequence] = None, legend: bool = True):
    """The class regions of a 2-D classifier over the data's bounding box (plus a margin), with
    the points X (n, 2) coloured by their labels y (n,), and a legend naming the classes.

    model: a mlpcore Module (logits out), an object with ``predict`` or a callable; outputs are
    read as class ids (ints), text labels (e.g. a scikit-learn classifier fitted on strings),
    scores (n, C) -> argmax, or one logit column -> > 0.
    y: class ids, or text labels (classes in sorted order, the model's output i being the i-th).
    class_names: the names of classes 0, 1, ... (for the legend; with text labels, their order).
    Class i is drawn in the i-th colour of tab10 (C0 blue, C1 orange, C2 green, ...).
    ax: a matplotlib Axes to draw into (e.g. one panel of a side-by-side comparison) instead of
    a new figure; the figure it belongs to is saved and returned.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X: expected shape (n, 2) for a 2-D decision boundary, got {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"y: expected {len(X)} labels, got {len(y)}")
    ids, names = _label_ids(y, class_names)
    predict = _predict_fn(model)
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    Z = _classes(predict(grid), names).reshape(gx.shape)
    k = max(int(Z.max()) + 1, int(ids.max()) + 1 if len(ids) else 0, len(names) if names else 0)
    colors = _class_colors(k)
    cmap, norm = ListedColormap(colors), BoundaryNorm(np.arange(k + 1) - 0.5, k)
    if ax is None:
        fig, (ax,) = _figure(1, (5.5, 5.0))
    else:
        fig = ax.figure
    ax.contourf(gx, gy, Z, levels=np.arange(k + 1) - 0.5, cmap=cmap, norm=norm, alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1], c=ids, cmap=cmap, norm=norm, s=12, edgecolors="k", linewidths=0.3)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    if legend:
        labels = names if names else [str(i) for i in range(k)]
        handles = [Line2D([], [], ls="", marker="o", markersize=6, markerfacecolor=colors[i], markeredgecolor="k",
                          markeredgewidth=0.3, label=labels[i] if i < len(labels) else str(i)) for i in range(k)]
        ax.legend(handles=handles, title="class", loc="best", fontsize="small", framealpha=0.8)
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def plot_function_fit(model: Any, x: np.ndarray, y: np.ndarray, path: Optional[Union[str, os.PathLike]] = None,
                      true_fn: Optional[Callable] = None, resolution: int = 400, title: Optional[str] = None,
                      ax: Any = None):
    """A 1-D fit: the data (x (n,) or (n, 1), y) as points, the model's prediction on an even grid
    over x's range as a line, and ``true_fn`` (a numpy callable) dashed when given.
    ax: a matplotlib Axes to draw into instead of a new figure (its figure is saved and returned)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"y: expected {len(x)} values like x, got {len(y)}")
    predict = _predict_fn(model)
    grid = np.linspace(x.min(), x.max(), resolution, dtype=np.float32).reshape(-1, 1)
    pred = np.asarray(predict(grid), dtype=np.float64).reshape(resolution, -1)[:, 0]
    if ax is None:
        fig, (ax,) = _figure(1, (6.0, 4.0))
    else:
        fig = ax.figure
    ax.scatter(x, y, s=10, alpha=0.6, label="data")
    if true_fn is not None:
        ax.plot(grid[:, 0], np.asarray(true_fn(grid[:, 0].astype(np.float64))), "k--", lw=1, label="target")
    ax.plot(grid[:, 0], pred, "C3", lw=2, label="model")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig
