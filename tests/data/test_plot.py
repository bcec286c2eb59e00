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
