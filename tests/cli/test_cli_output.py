"""What the `mlpcore` command prints: one line per epoch when stdout is a pipe (--verbose 0/1/2/auto),
error lines with a single `mlpcore:` prefix and no "-nan", a quiet end when the reader of stdout
goes away (`| head`), and the thread policy it reports."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import PYTHONPATH, _one_line_error, run

from mlpcore import cli


def test_verbose_levels(tmp_path):
    base = ("train", "--data", "moons", "--hidden", "8", "--epochs", "3", "--out", "none")
    lines = [ln for ln in run(*base).stdout.splitlines() if ln.startswith("Epoch ")]
    assert [ln.split(" - ")[0] for ln in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]  # auto in a pipe
    assert all("loss: " in ln and "accuracy: " in ln for ln in lines)
    assert run(*base, "--verbose", "2").stdout.count("Epoch ") == 3
    for quiet in (["--verbose", "0"], ["--no-progress"]):
        r = run(*base, *quiet)
        assert r.returncode == 0 and "Epoch" not in r.stdout and r.stderr == ""
    assert "Epoch 1/3" in run(*base, "--verbose", "1").stdout  # a bar, even in a pipe
    assert "--verbose" in _one_line_error(run(*base, "--verbose", "3"), 2)


def test_diverging_training_error_has_one_prefix_and_no_minus_nan(tmp_path):
    X = np.random.default_rng(0).standard_normal((200, 3))
    f = tmp_path / "r.csv"
    f.write_text("a,b,c,t\n" + "\n".join(",".join(f"{v:.4f}" for v in row) + f",{row[0] * 1e3:.4f}"
                                         for row in X) + "\n")
    r = run("train", "--data", str(f), "--optimizer", "sgd", "--lr", "1e30", "--out", "none")
    line = _one_line_error(r, 1)
    assert line.startswith("mlpcore: error: non-finite loss (") and line.count("mlpcore:") == 1
    assert "-nan" not in r.stderr and "-nan" not in r.stdout
    assert "at epoch 1, batch " in line  # counted from 1, as the progress lines


def test_closed_pipe_ends_quietly(tmp_path):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, OPENBLAS_NUM_THREADS="1")
    rng = np.random.default_rng(0)
    f = tmp_path / "x.csv"
    f.write_text("a,b,y\n" + "\n".join(f"{a:.3f},{b:.3f},{int(a > 0)}" for a, b in rng.standard_normal((50000, 2)))
                 + "\n")
    model = tmp_path / "m.safetensors"
    assert run("train", "--data", str(f), "--hidden", "4", "--epochs", "1", "--out", str(model),
               "--verbose", "0").returncode == 0
    for args in (["predict", "--model", str(model), str(f)],
                 ["train", "--data", "moons", "--hidden", "4", "--epochs", "200", "--out", "none", "--verbose", "2"]):
        cmd = f"{sys.executable} -m mlpcore.cli {' '.join(args)} | head -n 2; exit ${{PIPESTATUS[0]}}"
        r = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=240)
        assert len(r.stdout.splitlines()) == 2, r.stdout
        # no traceback, no "Broken pipe", no "Exception ignored" (predict's accuracy line may be there)
        assert all(ln.startswith("accuracy ") for ln in r.stderr.splitlines()), r.stderr
        # 141 as a command killed by SIGPIPE; 0 when the pipe took the whole output before head left
        assert r.returncode in (0, 141) and (r.returncode == 141 or args[0] == "predict"), r.returncode


def test_threads_reported():
    env_pinned = run("info").stdout  # the suite's run() pins OPENBLAS_NUM_THREADS=1
    assert "threads   1 thread(s)" in env_pinned
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"):
        env.pop(var, None)
    r = subprocess.run([sys.executable, "-m", "mlpcore.cli", "train", "--data", "moons", "--epochs", "1",
                        "--out", "none", "--threads", "2", "--verbose", "0"], env=env, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0 and "cpu, 2 thread(s)" in r.stdout, r.stderr


def test_default_checkpoint_is_git_ignored():
    """`mlpcore train` in the checkout writes ./mlpcore-model.safetensors: git leaves it out."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", cli.DEFAULT_OUT], capture_output=True)
    assert r.returncode == 0, f"{cli.DEFAULT_OUT} is not in .gitignore"
