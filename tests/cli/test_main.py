"""`python -m mlpcore` is the `mlpcore` command: same parser, same output, same exit codes
(0 ok, 2 bad arguments, 1 runtime error with one line on stderr). Run in a subprocess, as a user
would, against the mlpcore this test imported (source build or installed wheel)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlpcore

PYTHONPATH = str(Path(mlpcore.__file__).resolve().parents[1])


def _env():
    env = dict(os.environ, PYTHONPATH=PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLPCORE_DEBUG", None)
    env["OPENBLAS_NUM_THREADS"] = "1"  # tiny GEMMs on a shared machine; results do not depend on it
    return env


def run(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240)


def python_m(*args, cwd=None):
    return run([sys.executable, "-m", "mlpcore", *args], cwd=cwd)


def test_runs_the_installed_package():
    r = python_m("info")
    assert r.returncode == 0, r.stderr
    assert f"mlpcore   {mlpcore.__version__}" in r.stdout
    code = "import mlpcore.__main__ as m, mlpcore.cli as c; print(m.main is c.main, m.__file__)"
    r = run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr
    same, path = r.stdout.split()
    assert same == "True" and Path(path).parent == Path(mlpcore.__file__).parent


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["train", "--help"], ["predict", "--help"]])
def test_help_exits_0_and_names_the_command(args):
    r = python_m(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: mlpcore"), r.stdout  # prog is "mlpcore", not "__main__.py"
    assert r.stderr == ""
    if args in ([], ["--help"], ["-h"]):
        for command in ("train", "predict", "bench", "info"):
            assert command in r.stdout


def test_same_help_as_the_cli_module():
    assert python_m("--help").stdout == run([sys.executable, "-m", "mlpcore.cli", "--help"]).stdout


def test_bad_arguments_exit_2_with_one_line():
    for args in (["frobnicate"], ["train", "--epochs", "0"], ["train", "--no-such-flag"], ["predict"]):
        r = python_m(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mlpcore") and ": error:" in lines[0], r.stderr
        assert r.stdout == ""


def test_runtime_error_exits_1_with_one_line(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text("1,2\n3,4\n")
    r = python_m("predict", "--model", str(tmp_path / "missing.safetensors"), str(data))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlpcore: error:") and "missing.safetensors" in lines[0]


def test_trains_and_saves(tmp_path):
    r = python_m("train", "--data", "moons", "--hidden", "16", "--epochs", "2", "--threads", "1",
                 "--no-progress", "--out", "m.safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "test" in r.stdout and "accuracy" in r.stdout
    assert mlpcore.load(tmp_path / "m.safetensors") is not None


def test_console_script_matches():
    script = Path(sys.executable).parent / "mlpcore"
    if not script.is_file():
        pytest.skip(f"no console script next to {sys.executable} (mlpcore is not pip-installed here)")
    for args in (["--help"], ["train", "--epochs", "0"]):
        a, b = python_m(*args), run([str(script), *args])
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)
