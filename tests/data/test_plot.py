"""mlpcore.plot renders PNGs without a display (Agg canvas, no pyplot)."""


import numpy as np
import pytest

import mlpcore as mc
from mlpcore import datasets as ds

pytest.importorskip("matplotlib")
from mlpcore import plot  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG


class _History:
    history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.8, 0.9],
               "val_accuracy": [0.4, 0.7, 0.85]}


def test_plot_history(tmp_path):
    p = tmp_path / "h.png"
    fig = plot.plot_history(_History(), p)
    assert _is_png(p)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2  # train and validation
    plot.plot_history({"loss": [3.0, 2.0]}, tmp_path / "d.png")
    assert _is_png(tmp_path / "d.png")
    with pytest.raises(TypeError, match="history"):
        plot.plot_history([1, 2, 3])


def test_plot_decision_boundary(tmp_path):
    X, y = ds.make_moons(200, noise=0.1, seed=0)
    model = mc.Sequential(mc.Linear(2, 16, seed=0), mc.Tanh(), mc.Linear(16, 2, seed=1))
    p = tmp_path / "b.png"
    fig = plot.plot_decision_boundary(model, X, y, p, resolution=50, title="moons")
    assert _is_png(p) and fig.axes[0].get_title() == "moons"
    # a plain callable returning class ids, and one logit column
    plot.plot_decision_boundary(lambda G: (G[:, 0] > 0.5).astype(int), X, y, tmp_path / "c.png", resolution=30)
    plot.plot_decision_boundary(lambda G: G[:, :1] - 0.5, X, y, tmp_path / "l.png", resolution=30)
    assert _is_png(tmp_path / "c.png") and _is_png(tmp_path / "l.png")
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        plot.plot_decision_boundary(model, np.zeros((5, 3), np.float32), np.zeros(5), None)
    with pytest.raises(TypeError, match="model"):
        plot.plot_decision_boundary(42, X, y)


def test_plot_function_fit(tmp_path):
    X, y = ds.make_function("sin", 100, noise=0.1, seed=0)
    model = mc.Sequential(mc.Linear(1, 16, seed=0), mc.Tanh(), mc.Linear(16, 1, seed=1))
    p = tmp_path / "f.png"
    fig = plot.plot_function_fit(model, X, y, p, true_fn=np.sin)
    assert _is_png(p)
    assert len(fig.axes[0].lines) == 2  # target and model curves
    plot.plot_function_fit(np.sin, X[:, 0], y[:, 0], tmp_path / "g.png")
    assert _is_png(tmp_path / "g.png")


def test_missing_matplotlib_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match=r"pip install mlpcore\[plot\]"):
        plot.plot_history({"loss": [1.0]})


def test_plot_into_given_axes(tmp_path):
    """ax=: draw into one panel of an existing figure (side-by-side comparisons); the panel's
    figure is saved and returned."""
    from mlpcore.plot import _figure

    X, y = ds.make_moons(100, noise=0.1, seed=0)
    model = mc.Sequential(mc.Linear(2, 8, seed=0), mc.Tanh(), mc.Linear(8, 2, seed=1))
    fig, axes = _figure(2)
    assert plot.plot_decision_boundary(model, X, y, ax=axes[1], resolution=30, title="right") is fig
    Xf, yf = ds.make_function("sin", 50, seed=0)
    f1 = mc.Sequential(mc.Linear(1, 8, seed=0), mc.Tanh(), mc.Linear(8, 1, seed=1))
    p = tmp_path / "two.png"
    assert plot.plot_function_fit(f1, Xf, yf, p, true_fn=np.sin, ax=axes[0], title="left") is fig
    assert len(fig.axes) == 2 and [a.get_title() for a in fig.axes] == ["left", "right"]
    assert len(axes[0].lines) == 2 and len(axes[1].collections) > 0  # curves left, regions right
    assert _is_png(p)


def _tab10(i):
    from matplotlib import colormaps

    return np.array(colormaps["tab10"].colors[i])


def test_decision_boundary_text_labels_legend_and_tab10_order(tmp_path):
    """Text labels (classes in sorted order, as load_csv and scikit-learn order them), a legend
    naming the classes, class i drawn in tab10's i-th colour."""
    X, y = ds.make_spirals(300, n_arms=3, noise=0.1, seed=0)
    names = np.array(["cherry", "apple", "banana"])[y]  # sorted: apple=1 -> 0, banana=2 -> 1, cherry=0 -> 2
    ids = np.searchsorted(["apple", "banana", "cherry"], names)
    model = lambda G: np.full(len(G), 2)  # noqa: E731 - every grid point is class 2 (cherry)
    fig = plot.plot_decision_boundary(model, X, names, tmp_path / "s.png", resolution=20)
    assert _is_png(tmp_path / "s.png")
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "class"
    assert [t.get_text() for t in legend.get_texts()] == ["apple", "banana", "cherry"]
    for handle, i in zip(legend.legend_handles, range(3)):
        np.testing.assert_allclose(np.array(handle.get_markerfacecolor())[:3], _tab10(i))
    points = ax.collections[-1].get_facecolors()[:, :3]
    for i in range(3):
        np.testing.assert_allclose(points[ids == i], np.tile(_tab10(i), ((ids == i).sum(), 1)))
    # a model predicting text labels (a scikit-learn classifier fitted on strings) and int ids with names
    fig = plot.plot_decision_boundary(lambda G: np.where(G[:, 0] > 0, "banana", "apple"), X, names, resolution=20)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["apple", "banana", "cherry"]
    fig = plot.plot_decision_boundary(lambda G: (G[:, 0] > 0).astype(int), X, y, resolution=20,
                                      class_names=["a", "b", "c"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"\['kiwi'\] are not among the classes"):
        plot.plot_decision_boundary(lambda G: np.full(len(G), "kiwi"), X, names, resolution=10)
    # two classes: tab10's first two colours too (no separate binary colour map)
    fig = plot.plot_decision_boundary(lambda G: (G[:, 0] > 0).astype(int), X[:50], (y[:50] > 0).astype(int),
                                      resolution=10)
    np.testing.assert_allclose(np.array(fig.axes[0].get_legend().legend_handles[1].get_markerfacecolor())[:3],
                               _tab10(1))


def test_plot_history_panels_and_legends(tmp_path):
    """MSELoss logs "mse" equal to "loss": no second panel for it. LR schedules log "lr": its panel
    has one curve and no "train" legend. A panel with train and validation curves has a legend."""
    h = {"loss": [0.5, 0.3, 0.2], "mse": [0.5, 0.3, 0.2], "val_loss": [0.6, 0.4, 0.35],
         "val_mse": [0.6, 0.4, 0.35], "val_r2": [0.1, 0.5, 0.6], "lr": [0.1, 0.1, 0.01]}
    fig = plot.plot_history(h, tmp_path / "h.png")
    assert _is_png(tmp_path / "h.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "learning rate", "r2"]
    loss, lr, r2 = fig.axes
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train", "validation"]
    assert lr.get_legend() is None and len(lr.lines) == 1
    assert [t.get_text() for t in r2.get_legend().get_texts()] == ["validation"]  # a lone validation curve says so
    # mse measured apart from the loss (train_metrics=True) keeps its panel
    fig = plot.plot_history({"loss": [0.5, 0.3], "mse": [0.45, 0.28]})
    assert [ax.get_title() for ax in fig.axes] == ["loss", "mse"]


def _gap(a, b) -> float:
    """Distance in pixels between two boxes (0 when they overlap)."""
    dx, dy = max(b.x0 - a.x1, a.x0 - b.x1, 0.0), max(b.y0 - a.y1, a.y0 - b.y1, 0.0)
    return (dx * dx + dy * dy) ** 0.5


def test_gates_figure_labels_do_not_overlap(monkeypatch, tmp_path):
    """Every value and gradient label of the gates figure has its own space: at least half a line
    of text away from any other (labels of wires that meet at a gate used to touch)."""
    from mlpcore.examples import gates

    figs = []
    monkeypatch.setattr(gates, "save", lambda fig, path: figs.append(fig) or path)
    gates.run(out=str(tmp_path))
    (fig,) = figs
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_color() in ("green", "red")]
        assert len(boxes) >= 10
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert _gap(a, b) >= 0.5 * a.height, (a, b)
