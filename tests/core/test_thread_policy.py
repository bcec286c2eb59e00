"""The default thread policy: unless the count is pinned (set_num_threads(n), OPENBLAS_NUM_THREADS),
a GEMM too small to split runs on one OpenBLAS thread and a larger one on the default count;
set_num_threads(None) restores the policy. Each case runs in a fresh interpreter (the count is
process-wide). bench/threads.py measures what it is for."""

import os
import subprocess
import sys

import pytest

# OpenBLAS's own count after a small and after a large GEMM, through the same library
PROBE = r"""
import ctypes, os
import numpy as np
import scipy_openblas32
import mlpcore as mc
lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so"))
def openblas_threads():
    return lib.scipy_openblas_get_num_threads()
rng = np.random.default_rng(0)
small = mc.Sequential(mc.Linear(64, 256, seed=0), mc.ReLU(), mc.Linear(256, 10, seed=1))
big = mc.Sequential(mc.Linear(1024, 1024, seed=0))  # 1024 x 1024 x 1024 = 2**30 multiply-adds
out = [mc.get_num_threads(), mc._core.num_threads_pinned()]
with mc.no_grad():
    small(rng.standard_normal((64, 64)).astype(np.float32))
    out.append(openblas_threads())
    big(rng.standard_normal((1024, 1024)).astype(np.float32))
    out.append(openblas_threads())
mc.set_num_threads(1)
out += [mc.get_num_threads(), mc._core.num_threads_pinned()]
with mc.no_grad():
    big(rng.standard_normal((1024, 1024)).astype(np.float32))
out.append(openblas_threads())
mc.set_num_threads(None)
out.append(mc._core.num_threads_pinned())
with mc.no_grad():
    big(rng.standard_normal((1024, 1024)).astype(np.float32))
out.append(openblas_threads())
print(*[int(v) for v in out])
"""


def probe(**env_vars):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                                                           "OMP_NUM_THREADS")}
    env.update(env_vars)
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [int(v) for v in r.stdout.split()]


def test_small_gemms_run_on_one_thread_large_ones_on_the_default_count():
    n, pinned, after_small, after_big, *_ = probe(OMP_NUM_THREADS="2")  # OMP_ sets the default, no pin
    assert n == 2 and not pinned
    assert after_small == 1 and after_big == 2


def test_set_num_threads_pins_and_none_restores_the_policy():
    _, _, _, _, n1, pinned1, big_pinned, pinned_after_none, big_auto = probe(OMP_NUM_THREADS="2")
    assert (n1, pinned1, big_pinned) == (1, 1, 1)  # pinned: one thread even for a large GEMM
    assert not pinned_after_none and big_auto == 2


@pytest.mark.parametrize("var", ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"])
def test_openblas_environment_variable_pins(var):
    n, pinned, after_small, after_big, *_ = probe(**{var: "2"})
    assert (n, pinned, after_small, after_big) == (2, 1, 2, 2)


def test_the_policy_leaves_results_as_one_thread_gives_them():
    """A small model's GEMMs all run on one thread: the same bits as pinning one thread."""
    code = (
        "import hashlib, sys, numpy as np, mlpcore as mc\n"
        "if sys.argv[1] != 'auto':\n"
        "    mc.set_num_threads(int(sys.argv[1]))\n"
        "rng = np.random.default_rng(0)\n"
        "X, y = rng.standard_normal((256, 64)).astype(np.float32), rng.integers(0, 10, 256)\n"
        "m = mc.Sequential(mc.Linear(64, 256, seed=0), mc.ReLU(), mc.Linear(256, 10, seed=1))\n"
        "mc.Trainer(m, batch_size=32).fit(X, y, epochs=2, verbose=0)\n"
        "print(hashlib.sha256(b''.join(p.data.tobytes() for p in m.parameters())).hexdigest())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS")}
    runs = [subprocess.run([sys.executable, "-c", code, t], env=env, capture_output=True, text=True, timeout=120)
            for t in ("auto", "1")]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout
