"""The default thread policy against pinned thread counts, on an idle and on a loaded machine.

    python bench/threads.py                 # everything below, idle then loaded
    python bench/threads.py --only gemm     # the GEMM sweep only (gemm | train | large)
    python bench/threads.py --load loaded   # only with the busy loop (idle | loaded | both)

"idle" means without the busy loop: the machine is as idle as its other users leave it (the load
average printed before and after says how idle that was).

mlpcore's default (no set_num_threads, no --threads, no OPENBLAS_NUM_THREADS) runs a GEMM with
fewer than ``kSplitMinWork`` multiply-adds (cpp/src/cpu/cpu_backend.cpp) on one OpenBLAS thread
and a larger one on OpenBLAS's default count. This script measures what that threshold rests on
and what it gives:

- ``gemm``: median time of one SGEMM C (M, N) = A (M, K) · B (N, K)ᵀ through the same OpenBLAS
  (``scipy_cblas_sgemm``) at 1 and at 2 threads, per shape, and the ratio 2 threads / 1 thread;
- ``train``: ``mlpcore train`` (64-256-256-10 on digits, 30 epochs, batch 64; its reported
  training time) with the default, ``--threads 1`` and ``--threads 2`` (= the old default);
- ``large``: a GEMM-bound model ([1024, 2048, 2048, 1024] MSE, batch 512, a fixed number of
  compiled steps) with the default, 1 and 2 threads.

"loaded": a busy-loop process pinned to CPU 0 (``os.sched_setaffinity``) runs meanwhile, as
another program on one of the cores would. Every configuration runs in its own process; the
configurations alternate within each repeat (peers side by side, as the machine's load drifts)
and the medians and ratios are printed, with ``uptime``'s load average before and after.
Timings are wall clock: the point is how long the user waits.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

GEMM_SHAPES = [(64, 256, 64), (64, 256, 256), (128, 256, 784), (128, 512, 512), (256, 512, 512),
               (256, 1024, 1024), (512, 1024, 1024), (512, 2048, 2048)]
CONFIGS = [("default", None), ("--threads 1", 1), ("--threads 2", 2)]

LARGE_SCRIPT = r"""
import sys, time
import numpy as np
import mlpcore as mc
threads = sys.argv[1]
if threads != "default":
    mc.set_num_threads(int(threads))
rng = np.random.default_rng(0)
X = rng.standard_normal((512, 1024)).astype(np.float32)
Y = rng.standard_normal((512, 1024)).astype(np.float32)
model = mc.Sequential(mc.Linear(1024, 2048, seed=0), mc.ReLU(), mc.Linear(2048, 2048, seed=1), mc.ReLU(),
                      mc.Linear(2048, 1024, seed=2))
opt = mc.SGD(model.parameters(), lr=1e-4)
net = model.compiled()
net.train_step(opt._core, mc.MSELoss.kind, X, Y)  # warm-up: workspace, OpenBLAS buffers
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    net.train_step(opt._core, mc.MSELoss.kind, X, Y)
print(f"seconds {time.perf_counter() - t:.6f}")
"""

GEMM_SCRIPT = r"""
import ctypes, os, statistics, sys, time
import numpy as np
import scipy_openblas32
lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so"))
P, I, F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
lib.scipy_cblas_sgemm.argtypes = [I, I, I, I, I, I, F, P, I, P, I, F, P, I]
M, N, K, threads = map(int, sys.argv[1:5])
lib.scipy_openblas_set_num_threads(threads)
rng = np.random.default_rng(0)
A = rng.random((M, K), dtype=np.float32); B = rng.random((N, K), dtype=np.float32)
C = np.empty((M, N), np.float32)
def gemm():  # row-major, C = A B^T (a Linear layer's forward)
    lib.scipy_cblas_sgemm(101, 111, 112, M, N, K, 1.0, A.ctypes.data, K, B.ctypes.data, K, 0.0, C.ctypes.data, N)
gemm()
times, end = [], time.perf_counter() + 0.3
while time.perf_counter() < end or len(times) < 5:
    t = time.perf_counter(); gemm(); times.append(time.perf_counter() - t)
print(f"seconds {statistics.median(times):.9f}")
"""


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return "load average " + ", ".join(f.read().split()[:3])


@contextmanager
def busy_loop(on: bool):
    """A process spinning on CPU 0 while the block runs (when ``on``)."""
    if not on:
        yield
        return
    p = subprocess.Popen([sys.executable, "-c", "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass"])
    time.sleep(0.3)
    try:
        yield
    finally:
        p.kill()
        p.wait()


def clean_env() -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(var, None)  # the default policy is what is measured
    return env


def run_seconds(cmd: list, pattern: str, timeout: float = 600) -> float:
    out = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    m = re.search(pattern, out.stdout)
    if not m:
        raise RuntimeError(f"no timing in the output of {' '.join(cmd)}: {out.stdout[-500:]}")
    return float(m.group(1))


def bench_gemm(repeats: int) -> list:
    rows = []
    for M, N, K in GEMM_SHAPES:
        t = {1: [], 2: []}
        for _ in range(repeats):
            for threads in (1, 2):
                cmd = [sys.executable, "-c", GEMM_SCRIPT, str(M), str(N), str(K), str(threads)]
                t[threads].append(run_seconds(cmd, r"seconds ([0-9.]+)"))
        t1, t2 = statistics.median(t[1]), statistics.median(t[2])
        rows.append((f"{M}x{N}x{K}", M * N * K / 2**20, t1 * 1e3, t2 * 1e3, t2 / t1))
        print(f"  sgemm {M:4d}x{N:4d}x{K:4d}  work {M * N * K / 2**20:7.1f} Mi  1 thread {t1 * 1e3:8.3f} ms  "
              f"2 threads {t2 * 1e3:8.3f} ms  2/1 {t2 / t1:5.2f}", flush=True)
    return rows


def bench_configs(name: str, cmd_of, pattern: str, repeats: int) -> dict:
    times = {label: [] for label, _ in CONFIGS}
    for _ in range(repeats):
        for label, threads in CONFIGS:
            times[label].append(run_seconds(cmd_of(threads), pattern))
    med = {label: statistics.median(v) for label, v in times.items()}
    spread = {label: (min(v), max(v)) for label, v in times.items()}
    line = "  ".join(f"{label} {med[label]:.3f} s ({spread[label][0]:.2f}-{spread[label][1]:.2f})"
                     for label, _ in CONFIGS)
    print(f"  {name}: {line}  default/1 {med['default'] / med['--threads 1']:.2f}  "
          f"default/2 {med['default'] / med['--threads 2']:.2f}", flush=True)
    return med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("gemm", "train", "large"), action="append",
                    help="run only these parts (repeatable; default: all)")
    ap.add_argument("--load", choices=("idle", "loaded", "both"), default="both")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--large-steps", type=int, default=10)
    args = ap.parse_args(argv)
    parts = args.only or ["gemm", "train", "large"]
    if len(os.sched_getaffinity(0)) < 2:
        print("needs at least 2 CPUs", file=sys.stderr)
        return 2
    loads = {"idle": [False], "loaded": [True], "both": [False, True]}[args.load]
    mlpcore_cmd = [sys.executable, "-c", "import sys; from mlpcore.cli import main; sys.exit(main())",
                   "train", "--out", "none", "--no-progress"]
    for loaded in loads:
        print(f"{'with a busy loop on CPU 0' if loaded else 'without the busy loop'}: {uptime()}", flush=True)
        with busy_loop(loaded):
            if "gemm" in parts:
                bench_gemm(args.repeats)
            if "train" in parts:
                bench_configs("mlpcore train", lambda t: mlpcore_cmd + ([] if t is None else ["--threads", str(t)]),
                              r"time\s+([0-9.]+) s training", args.repeats)
            if "large" in parts:
                bench_configs(f"[1024,2048,2048,1024] B512, {args.large_steps} steps",
                              lambda t: [sys.executable, "-c", LARGE_SCRIPT, "default" if t is None else str(t),
                                         str(args.large_steps)], r"seconds ([0-9.]+)", args.repeats)
        print(f"  after: {uptime()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
