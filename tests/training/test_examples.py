"""The lecture experiments (mlpcore.examples): each one's outcome, asserted in quick mode, seed 0.

Every example is called in-process through its ``run(quick=True, out=..., seed=0)``; one is also
run as ``python -m mlpcore.examples.NAME`` in a subprocess. One BLAS thread, fixed seeds: the
numbers are deterministic.
"""

import builtins
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import datasets
from mlpcore.examples import EXAMPLES
from mlpcore.examples import gates, half_moons, logistic_regression, triangle, universal_approximation

PNG = b"\x89PNG\r\n\x1a\n"


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


HAS_MPL = _has_matplotlib()


pytestmark = pytest.mark.usefixtures("one_thread")


def _check_plots(result: dict, tmp_path, names):
    """With matplotlib: exactly the named PNGs were written into tmp_path; without: none."""
    if not HAS_MPL:
        assert result["plots"] == []
        return
    assert [os.path.basename(p) for p in result["plots"]] == list(names)
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5000


def test_every_example_is_listed_and_runnable():
    import mlpcore.examples as pkg

    assert EXAMPLES == ("logistic_regression", "triangle", "half_moons", "universal_approximation", "gates")
    for name in EXAMPLES:
        mod = importlib.import_module(f"mlpcore.examples.{name}")
        assert callable(mod.run) and callable(mod.main)
        assert f"``{name}``" in pkg.__doc__  # the package docstring lists it
        assert f"python -m mlpcore.examples.{name}" in mod.__doc__


def test_logistic_regression(tmp_path):
    r = logistic_regression.run(quick=True, out=tmp_path, seed=0)
    # Adam on mini-batches lands on the maximum-likelihood solution (Newton's method, float64)
    assert r["angle_deg"] < 3.0
    assert abs(r["accuracy"] - r["newton_accuracy"]) <= 0.01
    assert r["newton_loss"] <= r["loss"] <= r["newton_loss"] * 1.01
    assert r["accuracy"] > 0.85
    # the reported line is the model's decision boundary: it classifies the data as the model does
    X, y = datasets.make_logistic(400, n_features=2, scale=4.0, seed=0)
    line_acc = np.mean(((X.astype(np.float64) @ r["weight"] + r["bias"]) > 0) == (y == 1))
    assert line_acc == pytest.approx(r["accuracy"], abs=1e-12)
    _check_plots(r, tmp_path, ["logistic_regression.png"])


def test_newton_logistic_is_the_likelihood_optimum():
    X, y = datasets.make_logistic(300, n_features=3, scale=2.0, seed=5)
    theta = logistic_regression.newton_logistic(X, y)
    A = np.c_[X.astype(np.float64), np.ones(len(X))]
    grad = A.T @ (1 / (1 + np.exp(-A @ theta)) - y)  # gradient of the negative log-likelihood
    assert np.abs(grad).max() < 1e-8


def test_triangle(tmp_path):
    r = triangle.run(quick=True, out=tmp_path, seed=0)
    assert r["majority"] == pytest.approx(0.5, abs=0.01)
    # one line cannot enclose a triangle: far from solved, near the majority rate
    assert r["linear_accuracy"] < r["majority"] + 0.2
    assert r["linear_train_accuracy"] < r["majority"] + 0.2
    # one hidden layer succeeds
    assert r["hidden_accuracy"] >= 0.95
    assert r["hidden_train_accuracy"] >= 0.95
    _check_plots(r, tmp_path, ["triangle.png"])


def test_half_moons(tmp_path):
    r = half_moons.run(quick=True, out=tmp_path, seed=0)
    # 10 hidden units clearly beat 2
    assert r["1x2"]["accuracy"] < 0.9
    assert r["1x10"]["accuracy"] >= r["1x2"]["accuracy"] + 0.05
    # both deeper models reach high accuracy on fresh points, and fit the training set
    for name in ("2x20", "5x64"):
        assert r[name]["accuracy"] >= 0.93, name
        assert r[name]["train_accuracy"] >= 0.95, name
    _check_plots(r, tmp_path, ["half_moons.png"])


def test_universal_approximation(tmp_path):
    r = universal_approximation.run(quick=True, out=tmp_path, seed=0)
    mse = r["mse"]
    assert mse[80] < mse[2] < mse[1]
    assert mse[2] < 0.5 * mse[1]   # two units bend where one cannot
    assert mse[80] < 0.1 * mse[2]  # and 80 follow the curve closely
    assert mse[80] < 2e-3
    _check_plots(r, tmp_path, ["universal_approximation.png"])


def test_gates(tmp_path):
    r = gates.run(quick=True, out=tmp_path, seed=0)
    # the lecture's numbers
    assert r["f"] == -12.0
    assert r["df"] == {"x": -4.0, "y": -4.0, "z": 3.0}
    assert r["g"] == -10.0
    assert r["dg"] == {"x": -4.0, "y": 3.0, "z": 1.0, "w": 0.0}
    # every gate and circuit agrees with float64 central differences
    assert set(r["gradcheck"]) == {"AddGate", "MulGate", "MaxGate", "AddMulCircuit", "MulAddMaxCircuit"}
    assert max(r["gradcheck"].values()) < 1e-7
    # Maxout is Linear + max gates, Residual is an add gate
    assert r["maxout_vs_max_gate"] < 1e-12
    assert r["residual_vs_add_gate"] < 1e-12
    _check_plots(r, tmp_path, ["gates.png"])


def test_gradcheck_catches_a_wrong_gate():
    """The check the gates example relies on can fail: a multiply gate that forgets to swap its
    inputs in backward is caught."""

    class WrongMulGate(gates.MulGate):
        def _backward(self, a, b, g):
            return g * a, g * b

    x = np.random.default_rng(0).standard_normal((4, 6))
    assert max(mc.gradcheck(gates.MulGate(), x).values()) < 1e-7
    assert max(mc.gradcheck(WrongMulGate(), x).values()) > 0.1


def test_gates_local_rules_and_errors():
    a, b = np.array([[1.0, 5.0, 2.0]]), np.array([[3.0, -1.0, 2.0]])
    x, g = np.concatenate([a, b], 1), np.array([[10.0, 20.0, 30.0]])
    add, mul, mx = gates.AddGate(), gates.MulGate(), gates.MaxGate()
    np.testing.assert_array_equal(add(x), a + b)
    np.testing.assert_array_equal(add.backward(g), np.concatenate([g, g], 1))          # distributes
    np.testing.assert_array_equal(mul(x), a * b)
    np.testing.assert_array_equal(mul.backward(g), np.concatenate([g * b, g * a], 1))  # swaps
    np.testing.assert_array_equal(mx(x), [[3.0, 5.0, 2.0]])
    # routes to the winner; the tie (2, 2) goes to a, as Maxout's first piece
    np.testing.assert_array_equal(mx.backward(g), [[0.0, 20.0, 30.0, 10.0, 0.0, 0.0]])
    mo = mc.Maxout(2, 1, pieces=2, dtype=np.float64)
    mo.weight.data = np.eye(2)
    mo.bias.data = np.zeros(2)
    mo(np.array([[2.0, 2.0]]))
    np.testing.assert_array_equal(mo.backward(np.array([[30.0]])), [[30.0, 0.0]])

    with pytest.raises(ValueError, match="even number of columns"):
        gates.AddGate()(np.ones((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        gates.MulGate()(np.ones(4))
    with pytest.raises(RuntimeError, match="before forward"):
        gates.MaxGate().backward(np.ones((1, 1)))
    with pytest.raises(ValueError, match="grad_output"):
        m = gates.MulGate()
        m(np.ones((2, 4)))
        m.backward(np.ones((2, 3)))


def test_gates_train_module_by_module():
    """A custom gate inside a Sequential trains through the Trainer's module-by-module path:
    Linear(2, 16) + MaxGate is a hand-made maxout layer of 8 units (2 pieces each)."""
    X, y = datasets.make_moons(200, noise=0.1, seed=0)
    model = mc.Sequential(mc.Linear(2, 16, seed=0), gates.MaxGate(), mc.Linear(8, 2, seed=1))
    assert model.compiled() is None  # a custom module: not lowered
    trainer = mc.Trainer(model, loss=mc.CrossEntropyLoss(), optimizer=mc.Adam(model.parameters(), lr=0.02),
                         batch_size=32)
    trainer.fit(X, y, epochs=30, seed=0, verbose=0)
    assert trainer.evaluate(X, y)["accuracy"] >= 0.95


def test_without_matplotlib_no_plot_is_drawn(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    r = gates.run(out=tmp_path)
    assert r["plots"] == [] and list(tmp_path.iterdir()) == []
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert r["f"] == -12.0  # the experiment itself still runs


def test_no_plot_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = triangle.run(quick=True, out=None, seed=0)
    assert r["plots"] == [] and list(tmp_path.iterdir()) == []


def test_python_m_runs_an_example(tmp_path):
    """``python -m mlpcore.examples.gates`` from a fresh interpreter: prints the outcome and
    saves the plot into the current directory."""
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(mc.__file__))  # the mlpcore this test imported
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "mlpcore.examples.gates", "--quick", "--threads", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "f = q * z = -12" in proc.stdout
    assert "df/dx = -4, df/dy = -4, df/dz = 3" in proc.stdout
    if HAS_MPL:
        assert (tmp_path / "gates.png").read_bytes()[:8] == PNG


def test_package_main_lists_the_examples(capsys):
    from mlpcore.examples.__main__ import main

    main()
    out = capsys.readouterr().out
    for name in EXAMPLES:
        assert f"  {name} " in out
    assert "Gates: backpropagation" in out
