"""The MLPCORE_CUDA build switch (cpp/cmake/cuda.cmake) and the pyproject override behind it.

CMake is configured (not built) in a temporary directory with cuBLAS made unfindable — the
nvidia-cublas wheel hidden from the interpreter, find_package(CUDAToolkit) disabled — so the
outcome is the same on every machine: AUTO reports OFF, ON is a configure error naming what is
missing, OFF never looks.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")


@pytest.fixture(scope="module")
def configure(tmp_path_factory):
    """configure(value, env_value=None) -> (returncode, output) for MLPCORE_CUDA=value."""
    tmp = tmp_path_factory.mktemp("cuda_cfg")
    # A regular package `nvidia` without cu13/cublas shadows the wheel's namespace package.
    (tmp / "hide" / "nvidia").mkdir(parents=True)
    (tmp / "hide" / "nvidia" / "__init__.py").write_text("")
    build = tmp / "build"

    def run(value, env_value=None):
        env = dict(os.environ, PYTHONPATH=str(tmp / "hide"))
        env.pop("MLPCORE_CUDA", None)
        if env_value is not None:
            env["MLPCORE_CUDA"] = env_value
        cmd = [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            "-DMLPCORE_PYTHON=OFF",
            "-DMLPCORE_TESTS=OFF",
            f"-DPython_EXECUTABLE={sys.executable}",
            "-DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON",
            f"-DMLPCORE_CUDA={value}",
        ]
        if shutil.which("ninja"):
            cmd += ["-G", "Ninja"]
        p = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=240)
        return p.returncode, p.stdout + p.stderr

    return run


@pytest.mark.slow
def test_cuda_switch_auto_on_off(configure):
    rc, out = configure("AUTO")
    if "scipy-openblas32 is not importable" in out:
        pytest.skip("this interpreter cannot configure mlpcore (no scipy-openblas32)")
    assert rc == 0, out
    assert "CUDA backend OFF (MLPCORE_CUDA=AUTO: cuBLAS was not found" in out

    rc, out = configure("ON")
    assert rc != 0
    assert "MLPCORE_CUDA=ON but cuBLAS was not found" in out

    rc, out = configure("OFF")
    assert rc == 0, out
    assert "CUDA backend OFF (MLPCORE_CUDA=OFF)" in out

    rc, out = configure("ON", env_value="off")  # the environment variable (pip install) wins
    assert rc == 0, out
    assert "CUDA backend OFF (MLPCORE_CUDA=OFF)" in out

    rc, out = configure("MAYBE")
    assert rc != 0
    assert "MLPCORE_CUDA must be AUTO, ON or OFF" in out


CASES = [
    ({}, False),
    ({"MLPCORE_CUDA": "ON"}, True),
    ({"MLPCORE_CUDA": "on"}, True),
    ({"MLPCORE_CUDA": "AUTO"}, False),
    ({"MLPCORE_CUDA": "OFF"}, False),
    ({"CMAKE_ARGS": "-DFOO=1 -DMLPCORE_CUDA=ON"}, True),
    ({"CMAKE_ARGS": "-DMLPCORE_CUDA:STRING=ON"}, True),
    ({"CMAKE_ARGS": "-DMLPCORE_CUDA=OFF"}, False),
]


def test_pyproject_override_patterns():
    """The [[tool.scikit-build.overrides]] entries, matched as scikit-build-core does (re.search)."""
    tomllib = pytest.importorskip("tomllib")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    overrides = [
        o
        for o in cfg["tool"]["scikit-build"].get("overrides", [])
        if any("nvidia-cublas" in r for r in o.get("build", {}).get("requires", []))
    ]
    assert overrides, "no override adds nvidia-cublas to the build requirements"
    for env, want in CASES:
        got = any(
            all(k in env and re.search(pat, env[k]) for k, pat in o["if"]["env"].items()) for o in overrides
        )
        assert got == want, env


def test_pyproject_adds_cublas_to_the_build_only_when_asked(monkeypatch):
    """The same through scikit-build-core itself, where it is installed."""
    gr = pytest.importorskip("scikit_build_core.builder.get_requires")
    monkeypatch.chdir(ROOT)
    for env, want in CASES:
        monkeypatch.delenv("MLPCORE_CUDA", raising=False)
        monkeypatch.delenv("CMAKE_ARGS", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        requires = gr.GetRequires.from_config_settings({}).settings.build.requires
        assert any(re.match(r"nvidia-cublas", r) for r in requires) == want, env
