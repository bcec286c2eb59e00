"""The `mlpcore` command, run as `python -m mlpcore.cli` in a subprocess (as a user would), plus
two in-process checks of the bench launcher. Exit codes: 0 ok, 2 bad arguments, 1 runtime error;
errors are one line on stderr, never a traceback."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlpcore
from mlpcore import cli
from mlpcore import datasets as ds

PYTHONPATH = str(Path(mlpcore.__file__).resolve().parents[1])


def run(*args, cwd=None, code=None):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLPCORE_DEBUG", None)
    # One OpenBLAS thread: on a busy shared 2-core machine, two spinning OpenBLAS threads can make
    # these small GEMMs 40x slower. Results do not depend on it.
    env["OPENBLAS_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mlpcore.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def _one_line_error(r, rc):
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], r.stderr
    return lines[0]


def test_default_train_reaches_097_on_digits(tmp_path):
    pytest.importorskip("sklearn")
    r = run("train", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    acc = float(re.search(r"^test\s+loss [\d.]+\s+accuracy ([\d.]+)", r.stdout, re.M).group(1))
    assert acc >= 0.97, r.stdout
    assert "digits" in r.stdout and re.search(r"^time\s+[\d.]+ s", r.stdout, re.M)
    assert re.search(r"^Epoch 30/30 - .* - loss: ", r.stdout, re.M)  # one line per epoch: stdout is a pipe
    assert r.stderr == ""
    ckpt = tmp_path / cli.DEFAULT_OUT
    ck = mlpcore.load_checkpoint(ckpt)
    assert ck["epoch"] == 30 and ck["extra"]["task"] == "classification"
    assert ck["optimizer_state"]["type"] == "AdamW"

    # predict on rows of the digits set; the labels column is recognised and scored
    X, y = ds.load_digits(scale=None)
    data = tmp_path / "digits.csv"
    np.savetxt(data, np.c_[X[:50], y[:50]], delimiter=",", fmt="%g")
    r = run("predict", "--model", str(ckpt), str(data))
    assert r.returncode == 0, r.stderr
    pred = np.array(r.stdout.split(), dtype=int)
    assert pred.shape == (50,) and np.mean(pred == y[:50]) >= 0.9
    assert re.match(r"accuracy [\d.]+ on 50 rows", r.stderr)


def test_train_options_and_predict_moons(tmp_path):
    out = tmp_path / "moons.safetensors"
    r = run("train", "--data", "moons", "--hidden", "16,16", "--activation", "tanh", "--optimizer", "sgd",
            "--lr", "0.1", "--epochs", "20", "--batch-size", "32", "--threads", "1", "--seed", "3",
            "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # --no-progress
    assert "2-16-16-2 tanh, sgd lr 0.1, 20 epochs, batch 32, cpu, 1 thread(s)" in r.stdout
    acc = float(re.search(r"^test .*accuracy ([\d.]+)", r.stdout, re.M).group(1))
    assert acc > 0.9
    X, y = ds.make_moons(40, noise=0.1, seed=9)
    np.savez(tmp_path / "q.npz", X=X)
    preds = tmp_path / "pred.txt"
    r = run("predict", "--model", str(out), str(tmp_path / "q.npz"), "--out", str(preds))
    assert r.returncode == 0, r.stderr
    p = np.array(preds.read_text().split(), dtype=int)
    assert p.shape == (40,) and np.mean(p == y) > 0.85


def test_train_user_csv_regression_and_classes(tmp_path):
    X, y = ds.make_linear_regression(300, n_features=3, noise=0.05, seed=0)
    f = tmp_path / "reg.csv"
    f.write_text("a,b,c,price\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in np.c_[X, y]) + "\n")
    out = tmp_path / "reg.safetensors"
    r = run("train", "--data", str(f), "--target", "price", "--hidden", "32", "--epochs", "60", "--batch-size", "16", "--lr", "0.01", "--out", str(out),
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "regression" in r.stdout
    r2 = float(re.search(r"^test .* r2 ([-\d.]+)", r.stdout, re.M).group(1))
    assert r2 > 0.95
    r = run("predict", "--model", str(out), str(f), "--target", "price")
    assert r.returncode == 0, r.stderr
    pred = np.array(r.stdout.split(), dtype=np.float64)
    assert pred.shape == (300,) and np.corrcoef(pred, y[:, 0])[0, 1] > 0.97

    # integer targets trained as regression with --task
    yi = np.rint(y * 3).astype(int) - int(np.rint(y * 3).min())
    h = tmp_path / "int.csv"
    h.write_text("\n".join(",".join(f"{v:.5f}" for v in row) + f",{t}" for row, t in zip(X, yi[:, 0])) + "\n")
    r = run("train", "--data", str(h), "--task", "regression", "--epochs", "2", "--out", "none", "--no-progress")
    assert r.returncode == 0 and "regression" in r.stdout, r.stderr

    # string labels: the checkpoint keeps the names and predict prints them
    Xc, yc = ds.make_circles(300, noise=0.05, seed=1)
    names = np.array(["inner", "outer"])[1 - yc]
    g = tmp_path / "cls.csv"
    g.write_text("\n".join(f"{a:.5f},{b:.5f},{n}" for (a, b), n in zip(Xc, names)) + "\n")
    out = tmp_path / "cls.safetensors"
    r = run("train", "--data", str(g), "--epochs", "40", "--lr", "0.01", "--batch-size", "16", "--hidden", "32,32", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    r = run("predict", "--model", str(out), str(g))
    assert r.returncode == 0, r.stderr
    got = np.array(r.stdout.split())
    assert set(got) <= {"inner", "outer"} and np.mean(got == names) > 0.9
    assert float(re.match(r"accuracy ([\d.]+)", r.stderr).group(1)) == pytest.approx(np.mean(got == names), abs=1e-4)


def test_help_on_every_command():
    for args in ([], ["--help"], ["train", "--help"], ["predict", "--help"], ["bench", "--help"],
                 ["info", "--help"]):
        r = run(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert "usage: mlpcore" in r.stdout, args
    assert "--batch-size" in run("train", "--help").stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"mlpcore {mlpcore.__version__}"


@pytest.mark.parametrize("args,needle", [
    (["frobnicate"], "invalid choice"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--hidden", "256,x"], "--hidden"),
    (["train", "--optimizer", "lbfgs"], "--optimizer"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--test-size", "1.5"], "--test-size"),
    (["train", "--bogus"], "unrecognized"),
    (["predict", "data.csv"], "--model"),
])
def test_bad_arguments_exit_2(args, needle):
    line = _one_line_error(run(*args), 2)
    assert needle in line


def test_runtime_errors_exit_1(tmp_path):
    line = _one_line_error(run("train", "--data", str(tmp_path / "missing.csv"), "--out", "none"), 1)
    assert "no such file" in line
    line = _one_line_error(run("train", "--data", "mnist", "--out", "none"), 1)
    assert "--data" in line
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    data = tmp_path / "x.csv"
    data.write_text("1,2\n3,4\n")
    line = _one_line_error(run("predict", "--model", str(bad), str(data)), 1)
    assert "bad.safetensors" in line
    line = _one_line_error(run("predict", "--model", str(tmp_path / "nope.safetensors"), str(data)), 1)
    assert "nope.safetensors" in line
    if not mlpcore.cuda_available():
        line = _one_line_error(run("train", "--data", "moons", "--device", "cuda", "--out", "none"), 1)
        assert "cuda" in line.lower()


def test_info():
    r = run("info")
    assert r.returncode == 0, r.stderr
    assert f"mlpcore   {mlpcore.__version__}" in r.stdout
    assert "blas" in r.stdout and "threads" in r.stdout and re.search(r"^cuda\s+(available|not available)", r.stdout,
                                                                      re.M)


def test_falls_back_to_moons_without_sklearn(tmp_path):
    code = ("import sys; sys.modules['sklearn'] = None\n"  # makes `import sklearn` raise ImportError
            "from mlpcore.cli import main\n"
            "sys.exit(main(['train', '--epochs', '3', '--out', 'none', '--no-progress']))")
    r = run(code=code, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "half moons" in r.stdout and "scikit-learn is not installed" in r.stderr


def test_bench_runs_compare_main(tmp_path, monkeypatch, capsys):
    script = tmp_path / "compare.py"
    script.write_text("def main(argv):\n    print('compare got', argv)\n    return 0\n")
    monkeypatch.setattr(cli, "_bench_script", lambda: script)
    assert cli.main(["bench", "--quick", "--threads", "1"]) == 0
    assert capsys.readouterr().out.strip() == "compare got ['--quick', '--threads', '1']"
    assert cli.main(["bench", "--", "--help"]) == 0
    assert capsys.readouterr().out.strip() == "compare got ['--help']"


def test_bench_runs_the_real_comparison(tmp_path):
    """`mlpcore bench` finds compare.py (the checkout's, or the copy installed with the package)
    and runs it; --quick on the tiny workload, mlpcore only."""
    assert cli._bench_script().is_file()
    out = tmp_path / "bench.json"
    r = run("bench", "--quick", "--configs", "tiny_ce", "--peers", "mlpcore", "--threads", "1", "--quiet",
            "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["rows"]


def test_bench_without_checkout(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_bench_script", lambda: tmp_path / "bench" / "compare.py")
    assert cli.main(["bench"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source checkout" in err


def test_digits_bench_script_runs():
    """bench/digits_train.py (the comparison in the report), mlpcore only, 2 epochs; a subprocess
    because it sets thread counts process-wide."""
    pytest.importorskip("sklearn")
    path = Path(__file__).resolve().parents[2] / "bench" / "digits_train.py"
    r = run(code=f"import runpy, sys; sys.argv = ['x', '--epochs', '2', '--repeats', '1', '--libraries', 'mlpcore']; "
                 f"runpy.run_path({str(path)!r}, run_name='__main__')")
    assert r.returncode == 0, r.stderr
    # | library | wall s | CPU s | test accuracy | epochs |
    row = re.search(r"^\| mlpcore \(train default\)\s+\|\s+[\d.]+ \|\s+[\d.]+ \|\s+([\d.]+) \|\s+2 \|$",
                    r.stdout, re.M)
    assert row and float(row.group(1)) > 0.8, r.stdout
    assert "PyTorch" not in r.stdout and "scikit-learn" not in r.stdout
