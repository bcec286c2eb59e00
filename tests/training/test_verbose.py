"""What Trainer.fit prints: verbose 0 (nothing), 1 (tqdm bars), 2 (one line per epoch) and "auto"
(bars in a terminal or a notebook, lines in a file or pipe); the deprecated progress= argument;
and that the display never changes the numbers."""

import subprocess
import sys
import types

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.training import progress as progress_mod
from mlpcore.training.progress import Progress


pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(0, 3, (3, 2))[y] + rng.normal(0, 1, (n, 2))).astype(np.float32), y


def mlp(sizes, seed=0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [mc.Linear(a, b, seed=seed + i), mc.Tanh()]
    return mc.Sequential(*layers[:-1])


def weights(model):
    return [p.data.copy() for p in model.parameters()]


@pytest.fixture
def fake_notebook(monkeypatch):
    """An IPython module whose running shell belongs to a Jupyter kernel, as in a notebook."""

    class ZMQInteractiveShell:
        config = {"IPKernelApp": {"connection_file": "kernel-1.json"}}

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: ZMQInteractiveShell()))


def test_verbose_0_prints_nothing(capsys):
    X, y = blobs()
    mc.Trainer(mlp([2, 4, 3])).fit(X, y, epochs=2, verbose=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize("compiled", [None, False])
def test_verbose_2_prints_one_line_per_epoch(capsys, compiled):
    X, y = blobs()
    mc.Trainer(mlp([2, 4, 3]), batch_size=8, compiled=compiled).fit(X, y, epochs=3, validation_split=0.25, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(" - ")[0] for ln in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]  # counted from 1
    for ln in lines:
        assert "loss: " in ln and "accuracy: " in ln and "val_loss: " in ln and "val_accuracy: " in ln
        assert "\r" not in ln


def test_auto_prints_lines_to_a_file_or_pipe(capsys):
    X, y = blobs()
    mc.Trainer(mlp([2, 4, 3])).fit(X, y, epochs=2)  # pytest's captured stdout is not a terminal
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/2 - ") and out.count("\n") == 2 and "\r" not in out


def test_auto_in_a_pipe_from_a_subprocess():
    code = ("import numpy as np, mlpcore as mc\n"
            "X = np.random.default_rng(0).standard_normal((32, 2)).astype(np.float32); y = (X[:, 0] > 0).astype(int)\n"
            "mc.Trainer(mc.Sequential(mc.Linear(2, 2, seed=0))).fit(X, y, epochs=3)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [ln.split(" - ")[0] for ln in out.stdout.splitlines()] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


@pytest.mark.parametrize("compiled", [None, False])
def test_auto_shows_bars_on_a_terminal(capsys, monkeypatch, compiled):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(progress_mod, "stdout_is_tty", lambda: True)
    X, y = blobs()
    tr = mc.Trainer(mlp([2, 4, 3]), batch_size=8, compiled=compiled)
    tr.fit(X, y, epochs=4, validation_split=0.25)
    out = capsys.readouterr().out
    # the first epoch gets its own bar; fast epochs then share one bar over epochs
    assert "Epoch 1/4" in out and "Training" in out and "4/4" in out
    assert "val_accuracy=" in out and "loss=" in out
    tr.fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_auto_shows_bars_in_a_notebook(capsys, fake_notebook):
    pytest.importorskip("tqdm")
    assert progress_mod.in_notebook() and not progress_mod.stdout_is_tty()
    assert progress_mod.resolve_verbose("auto") == 1
    X, y = blobs()
    mc.Trainer(mlp([2, 4, 3]), batch_size=8).fit(X, y, epochs=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "batch" in out  # a bar (tqdm's text bar without ipywidgets)


def test_notebook_detection(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not progress_mod.in_notebook()

    class TerminalInteractiveShell:  # terminal IPython: not a notebook
        config = {"TerminalIPythonApp": {}}

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: TerminalInteractiveShell()))
    assert not progress_mod.in_notebook()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress_mod.in_notebook()


def test_notebook_uses_the_widget_bar_when_ipywidgets_is_there(monkeypatch):
    tqdm = pytest.importorskip("tqdm")
    import tqdm.notebook as tn

    assert progress_mod.bar_class(False) is tqdm.tqdm
    monkeypatch.setattr(tn, "IProgress", None)  # no ipywidgets: the text bar
    assert progress_mod.bar_class(True) is tqdm.tqdm
    monkeypatch.setattr(tn, "IProgress", object)  # ipywidgets installed
    assert progress_mod.bar_class(True) is tn.tqdm


def test_verbose_1_without_tqdm_prints_lines(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    X, y = blobs()
    h = mc.Trainer(mlp([2, 4, 3])).fit(X, y, epochs=2, verbose=1)
    assert len(h.epoch) == 2 and capsys.readouterr().out.startswith("Epoch 1/2 - ")


def test_progress_chunks_give_the_same_numbers(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(Progress, "EPOCH_BAR_MIN_S", 0.0)  # a bar (and chunked C++ calls) every epoch
    monkeypatch.setattr(Progress, "CHUNK_S", 10.0)  # chunks double: 1, 2, 4, ... batches
    X, y = blobs(100)
    ws = []
    for verbose in (1, 2, 0):
        m = mlp([2, 8, 3])
        mc.Trainer(m, optimizer=mc.Adam(m.parameters()), batch_size=4).fit(X, y, epochs=3, verbose=verbose)
        ws.append(weights(m))
    for w in ws[1:]:
        for a, b in zip(ws[0], w):
            np.testing.assert_array_equal(a, b)
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "25/25" in out and "Training" not in out


@pytest.mark.parametrize("bad", ["yes", 3, -1, 1.0, None])
def test_bad_verbose_is_refused_before_training(bad):
    X, y = blobs()
    m = mlp([2, 4, 3])
    before = weights(m)
    with pytest.raises(ValueError, match="verbose: expected 'auto', 0, 1 or 2"):
        mc.Trainer(m).fit(X, y, epochs=1, verbose=bad)
    for a, b in zip(before, weights(m)):
        np.testing.assert_array_equal(a, b)


def test_progress_argument_is_deprecated_and_still_works(capsys):
    X, y = blobs()
    tr = mc.Trainer(mlp([2, 4, 3]))
    with pytest.warns(DeprecationWarning, match="progress=.* deprecated: use verbose="):
        tr.fit(X, y, epochs=2, progress=False)
    assert capsys.readouterr().out == ""
    with pytest.warns(DeprecationWarning):
        tr.fit(X, y, epochs=2, progress=True)  # = verbose "auto": lines, stdout being captured
    assert capsys.readouterr().out.startswith("Epoch 1/2 - ")
