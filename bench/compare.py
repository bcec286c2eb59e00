"""End-to-end comparison of mlpcore with its peers, side by side in one run.

    python bench/compare.py                       # every configuration, every installed peer
    python bench/compare.py --quick               # a few repetitions (smoke test)
    python bench/compare.py --configs mnist_b128 --peers mlpcore,torch --threads 2

What it measures. One full training step (forward, loss, backward, plain SGD update) of an MLP
with ReLU hidden layers, or one eval-mode forward of a batch (the inference workloads), for each
peer. The normalised workloads (``mnist_bn_b128``, ``mnist_ln_b128``) put a BatchNorm1d (train
mode: batch statistics, running statistics updated) or a LayerNorm between each hidden Linear and
its ReLU; mlpcore, PyTorch eager and JAX run them (the other peers have no such layers: "n/a"):

  mlpcore        the compiled path: ``net = model.compiled(); net.train_step(opt._core, loss, x, y)``
                 (inference: ``net.predict(x, B)``, the compiled predict)
  mlpcore-epoch  the same network driven by ``net.train_epoch`` over the batch pool (no shuffle):
                 one Python call per pool of batches instead of one per step
  mlpcore-fit / -tob / -loop / -call / -nograd / -inv
                 mlpcore's other entry points, on the workloads whose Config.entry names them:
                 ``Trainer.fit`` per batch, ``Trainer.train_on_batch``, the PyTorch-style loop
                 (zero_grad, model(x), loss, backward, step), eval-mode ``model(x)``, the same under
                 ``mc.no_grad()``, and predict with ``mc.set_batch_invariant(True)``
                 (compare_worker.py has the exact calls)
  torch          PyTorch eager: nn.Sequential + loss + optimizer.zero_grad / backward / step
  torch-manual   hand-written PyTorch: manual backward under torch.inference_mode, preallocated
                 buffers, the SGD update fused into the weight-gradient GEMM (W.addmm_(dZ.T, A, alpha=-lr))
  numpy          a NumPy MLP written from scratch, preallocated buffers (out= everywhere)
  sklearn        scikit-learn MLPClassifier / MLPRegressor (solver="sgd", momentum 0, alpha 0),
                 float32, ``partial_fit`` over the pool of batches with batch_size=B; time / batches
  jax            the whole step (value_and_grad + update) under one jax.jit, parameters donated;
                 blocks at the end of each timed sample (async dispatch as in a real JAX loop),
                 after every call for inference. Optional: skipped with a note if jax is not
                 importable (``pip install jax jaxlib``; about 350 MB, so not a declared extra).

Threads. Every peer runs in its own worker process, started with OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS / MKL_NUM_THREADS set to the thread count before any import, and then
pinned again through its own API: mc.set_num_threads, torch.set_num_threads, threadpoolctl
(numpy, scikit-learn). JAX ignores those, so its worker is pinned to that many cores with
os.sched_setaffinity (and XLA's Eigen pool is switched off at 1 thread). OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are passed through untouched.

Timing. A worker builds its model, warms up (JAX compiles here), then calibrates how many steps
make one timed sample (~target seconds). The parent interleaves the peers: in each round every
peer takes its samples in turn (the order rotates per round), so the noise of a shared machine
hits all peers alike. Reported: the median ms per step over all samples, the IQR and min-max,
samples/s, GFLOP/s counting 6*B*sum(in*out) per training step (2*sum(in*out) per inference
call), and the share of the SGEMM peak at the same thread count. That convention counts the first
layer's dX, which no peer computes (nothing uses it), so a peer running at the peak shows more than
100%: for [784,256,256,10] the work done is 25% below 6*B*sum(in*out). Each sample is taken on two
clocks: wall time, and the worker's CPU time (all its threads), which time slices lost to other
processes do not inflate. The table shows wall time unless --clock cpu; on a loaded shared
machine CPU time is the steadier measure for 1-thread rows (at 2 threads it counts core-seconds,
spinning included). The JSON holds both.

SGEMM peak. A square single-precision GEMM (C = A @ B, row-major, n=2048) called through
``scipy_cblas_sgemm`` of the scipy_openblas32 library that mlpcore itself links (ctypes), with
the thread count set by mc.set_num_threads. It is a pseudo-peer: one call per round of every
workload, in the same rotation, and each workload's "% peak" divides by the median of the peak
samples of its own rounds (the load of a shared machine drifts over a run). This is the peak of
mlpcore's BLAS with the kernels it selects here (OpenBLAS honours OPENBLAS_CORETYPE), not the
hardware's: a peer with other GEMM kernels (JAX's XLA uses its own) can exceed 100%.

Baseline build. ``--baseline DIR`` also runs the compiled-path rows (mlpcore, mlpcore-epoch) with
the mlpcore package found in DIR (another checkout's python/mlpcore with its built _core*.so
copied in), as rows "mlpcore@base": their workers start with ``python -S`` (no site hooks, so an
editable install cannot shadow DIR) and DIR ahead of this interpreter's site-packages. The
compiled rows' budgets then include "no slower than the baseline" (within BASELINE_TOL). A
baseline package from a commit, built as the wheel builds it (Release, CPU):

    git archive COMMIT | tar -x -C /tmp/base && cd /tmp/base && cmake -S . -B build -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DMLPCORE_CUDA=OFF -Dpybind11_DIR=$(python -m pybind11 --cmakedir) \
        && cmake --build build --target _core && mkdir pkg && cp -r python/mlpcore build/_core*.so pkg/ \
        && mv pkg/_core*.so pkg/mlpcore/     # then: --baseline /tmp/base/pkg

Re-reading. ``--show RESULT.json [--clock cpu] [--readme]`` prints the tables of a saved run again
(--readme: the README's tables).

Budgets are those of the design notes (DESIGN.md, "Performance budget"), stated per workload in
CONFIGS: the compiled path's (``budget``) and each entry point's (``entry_budgets``); the fastest
peer is the fastest non-mlpcore peer. After the table comes one line per budget with its verdict.
The results go to JSON (--out; default bench/results/compare-<utc>.json).

Files: this one (workloads, budgets, the parent process, the command line), compare_peers.py (the
peers' runners), compare_worker.py (mlpcore's runner and the worker loop), compare_report.py
(analysis and tables); installed as mlpcore/_bench_compare*.py. ``main(argv)`` is the entry point
(a CLI may import this file by path); importing it starts nothing.
"""

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import select
import site
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from typing import Optional


def _sibling(name: str):
    """bench/compare_<name>.py (mlpcore/_bench_compare_<name>.py as installed), loaded once."""
    key = f"mlpcore_bench_compare_{name}"
    if key not in sys.modules:
        path = os.path.abspath(__file__).rsplit("compare", 1)[0] + f"compare_{name}.py"
        spec = importlib.util.spec_from_file_location(key, path)
        mod = sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    return sys.modules[key]


bench_peers, bench_worker, bench_report = _sibling("peers"), _sibling("worker"), _sibling("report")
Config = bench_peers.Config

# ------------------------------------------------------------------------------------------------
# Configurations, peers, budgets
# ------------------------------------------------------------------------------------------------

_TINY = {"text": ">= 20x PyTorch and >= 2x the fastest peer", "min_vs_torch": 20.0, "min_vs_best": 2.0}
_TRAIN_ENTRY = ("mlpcore-fit", "mlpcore-tob", "mlpcore-loop")
_EVAL_CALL = {"text": "<= 1.2x compiled predict and <= 0.6x NumPy", "max_vs": {"mlpcore": 1.2, "numpy": 0.6}}

CONFIGS = [
    Config("tiny_ce", (2, 16, 16, 2), 64, "ce", pool=16, budget=_TINY, entry=_TRAIN_ENTRY, entry_budgets={
        "mlpcore-tob": {"text": "<= 1.3x a batch inside fit", "max_vs": {"mlpcore-fit": 1.3}},
        "mlpcore-loop": {"text": ">= 10x the same loop in PyTorch eager", "min_vs_torch": 10.0}}),
    Config("tiny_mse", (64, 64, 64, 1), 32, "mse", pool=16, budget=_TINY, entry=_TRAIN_ENTRY),
    Config("mnist_b128", (784, 256, 256, 10), 128, "ce", threads=(1, 2), pool=8,
           budget={"text": ">= 1.1x the fastest peer", "min_vs_best": 1.1}, entry=_TRAIN_ENTRY),
    Config("wide_b256", (784, 1024, 1024, 10), 256, "ce", pool=4, rounds=5, per_round=2, target_s=0.06,
           budget={}),
    Config("gemm_bound", (1024, 4096, 4096, 1024), 512, "mse", pool=1, rounds=5, per_round=1, target_s=0.0,
           budget={"text": ">= 92% of the SGEMM peak", "min_peak_share": 0.92}),
    Config("infer_b1", (784, 256, 256, 10), 1, "ce", kind="infer", pool=16,
           budget={"text": ">= 2.5x lower latency than the fastest peer", "min_vs_best": 2.5},
           entry=("mlpcore-call", "mlpcore-nograd", "mlpcore-inv"),
           entry_budgets={"mlpcore-call": _EVAL_CALL, "mlpcore-nograd": _EVAL_CALL}),
    Config("infer_b64", (784, 256, 256, 10), 64, "ce", kind="infer", pool=8, entry=("mlpcore-inv",)),
    Config("infer_b1024", (784, 256, 256, 10), 1024, "ce", kind="infer", pool=4, rounds=5, per_round=2,
           target_s=0.06, entry=("mlpcore-inv",)),
    Config("mnist_bn_b128", (784, 256, 256, 10), 128, "ce", pool=8, norm="bn",
           budget={"text": ">= 1.2x PyTorch eager", "min_vs_torch": 1.2}),
    Config("mnist_ln_b128", (784, 256, 256, 10), 128, "ce", pool=8, norm="ln",
           budget={"text": ">= 1.2x PyTorch eager", "min_vs_torch": 1.2}),
]
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}

PEERS = ["mlpcore", "mlpcore-epoch", *bench_worker.ENTRY, "torch", "torch-manual", "numpy", "sklearn", "jax"]
MLPCORE_PEERS = bench_worker.MLPCORE_KINDS

SGEMM_N = 2048     # square SGEMM for the peak
SETTLE_S = 0.15    # pause between two workers' samples when threads > 1: OpenBLAS's idle threads spin
#                    for ~0.1 s after a call, which would otherwise be charged to the next peer
REPLY_TIMEOUT_S = 900.0

# analysis (compare_report.py), under the names callers and tests know
R = bench_report
_summary, _rows_for, _evaluate_budget, _analyse = R._summary, R._rows_for, R._evaluate_budget, R._analyse
_config_dict, _config_from_dict = bench_peers.config_dict, bench_peers.config_from_dict


# ------------------------------------------------------------------------------------------------
# Parent side: start workers, interleave their samples, summarise, print, write JSON.
# ------------------------------------------------------------------------------------------------


class _WorkerProcess:
    """Handle on a worker subprocess for (peer, threads)."""

    def __init__(self, peer: str, threads: int, baseline: Optional[str] = None):
        self.peer, self.threads = peer, threads
        env = dict(os.environ)
        py_flags = ["-u"]
        if baseline:  # DIR ahead of site-packages, and no site hooks (an editable install's finder)
            py_flags.append("-S")
            paths = [os.path.abspath(baseline), *site.getsitepackages(), env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS"):
            env[var] = str(threads)
        if peer == "jax":
            flags = env.get("XLA_FLAGS", "")
            if threads == 1:
                flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            env["XLA_FLAGS"] = flags.strip()
            env.setdefault("JAX_PLATFORMS", "cpu")
            env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "2")
        # stderr goes to a file, not a pipe: a chatty library can never block the worker on it.
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, *py_flags, os.path.abspath(__file__), "--worker", peer,
             "--worker-threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        hello = self._read()
        self.ok = bool(hello.get("ok"))
        self.error = hello.get("error")
        self.versions = hello.get("versions", {})

    def _read(self) -> dict:
        r, _, _ = select.select([self.proc.stdout], [], [], REPLY_TIMEOUT_S)
        line = self.proc.stdout.readline() if r else ""
        if not line:
            self.close(kill=True)
            err = self._stderr_tail()
            return {"ok": False,
                    "error": f"worker {self.peer}/{self.threads}t died or timed out: {err.strip()}"}
        return json.loads(line)

    def ask(self, req: dict) -> dict:
        if self.proc.poll() is not None:
            return {"ok": False, "error": f"worker {self.peer}/{self.threads}t is not running"}
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"ok": False, "error": f"worker {self.peer}/{self.threads}t closed its input"}
        return self._read()

    def close(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if not kill:
                try:
                    self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                    self.proc.stdin.flush()
                    self.proc.wait(timeout=30)
                except (BrokenPipeError, subprocess.TimeoutExpired):
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def _stderr_tail(self, n: int = 2000) -> str:
        try:
            self.stderr.seek(0)
            return self.stderr.read()[-n:]
        except (OSError, ValueError):
            return ""


def _quick(cfg: Config) -> Config:
    """Few, short repetitions: for smoke tests, not for numbers."""
    return replace(cfg, pool=min(cfg.pool, 4), rounds=2, per_round=1, target_s=min(cfg.target_s, 0.003))


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _parse_args(argv: Optional[list]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="few short repetitions (smoke test; numbers are rough)")
    p.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                   help="comma-separated: " + ", ".join(c.name for c in CONFIGS))
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated: " + ", ".join(PEERS))
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts for every config (default: each config's own, "
                        "e.g. 1 for the tiny ones, 1,2 for mnist_b128)")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/compare-<utc time>.json)")
    p.add_argument("--sgemm-n", type=int, default=None,
                   help=f"square SGEMM size for the peak (default {SGEMM_N})")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="what the table reports: wall-clock time (default), or the CPU time of the peer's "
                        "process (all threads), which other processes on a shared machine do not inflate; "
                        "the JSON always holds both")
    p.add_argument("--baseline", default=None, metavar="DIR",
                   help="also run the compiled rows with the mlpcore package in DIR (another build), as "
                        "'mlpcore@base' rows; the compiled budgets then include 'no slower than the "
                        "baseline'")
    p.add_argument("--show", default=None, metavar="JSON",
                   help="print the table of an earlier run's JSON (with --clock) instead of measuring")
    p.add_argument("--readme", action="store_true", help="also print the README's tables")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _print_tables(rows: list, peaks: dict, clock: str, readme: bool) -> None:
    print(R._fmt_table(rows, {str(t): p for t, p in peaks.items()}, clock))
    budgets = R.fmt_budgets(rows)
    if budgets:
        print("\nBudgets (DESIGN.md):\n" + budgets)
    if readme:
        print("\nREADME tables:\n" + R.fmt_readme(rows))


def _show(path: str, clock: str, readme: bool = False) -> int:
    """Re-analyse and print a saved run with the chosen clock."""
    with open(path) as f:
        res = json.load(f)
    configs = {c["name"]: _config_from_dict(c) for c in res["configs"]}
    raws: dict = {}
    for r in res["rows"]:
        raws.setdefault((r["config"], r["threads"]), []).append(r)
    groups = [(configs[g["config"]], g["threads"], raws.get((g["config"], g["threads"]), []),
               (g["n"], g["samples_s"])) for g in res["groups"]]
    rows, _, peaks = _analyse(groups, clock)
    _print_tables(rows, peaks, clock, readme)
    m = res.get("meta", {})
    print(f"Run of {m.get('date_utc')} on {m.get('cpu')} ({m.get('cpu_count')} CPUs), "
          f"load average {m.get('loadavg')} before / {m.get('loadavg_end')} after.")
    return 0


def _parse_list(text: str, allowed: list, what: str) -> list:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise SystemExit(f"--{what}: unknown {bad or text!r}; expected some of {allowed}")
    return items


def main(argv: Optional[list] = None) -> int:
    """Run the comparison (or, with the hidden --worker flag, be one peer's worker). Returns an exit code."""
    args = _parse_args(argv)
    if args.worker:
        return bench_worker._worker_main(args.worker, args.worker_threads)
    if args.show:
        return _show(args.show, args.clock, args.readme)

    names = _parse_list(args.configs, [c.name for c in CONFIGS], "configs")
    peers = _parse_list(args.peers, PEERS, "peers")
    if args.baseline:
        if not os.path.isfile(os.path.join(args.baseline, "mlpcore", "__init__.py")):
            raise SystemExit(f"--baseline: expected a directory holding an mlpcore package, "
                             f"got {args.baseline!r}")
        peers += [p + "@base" for p in R.COMPILED if p in peers]
    thread_override = None
    if args.threads:
        try:
            thread_override = tuple(int(t) for t in args.threads.split(","))
        except ValueError:
            raise SystemExit(f"--threads: expected comma-separated integers, got {args.threads!r}")
        if any(t < 1 for t in thread_override):
            raise SystemExit(f"--threads: expected counts >= 1, got {args.threads!r}")
    configs = [_quick(CONFIG_BY_NAME[n]) if args.quick else CONFIG_BY_NAME[n] for n in names]
    sgemm_n = args.sgemm_n or (512 if args.quick else SGEMM_N)
    warm_s = 0.02 if args.quick else 0.3

    # (config, threads) jobs, grouped by thread count so each group's workers start once.
    by_threads: dict = {}
    for cfg in configs:
        for t in (thread_override or cfg.threads):
            by_threads.setdefault(t, []).append(cfg)

    started = time.time()
    loadavg = round(os.getloadavg()[0], 2)
    groups, workers_meta, notes = [], {}, []
    for threads in sorted(by_threads):
        workers: dict = {}
        _log(f"== {threads} thread(s): starting workers for {', '.join(peers)}", args.quiet)
        for peer in peers:
            w = workers[(peer, threads)] = _WorkerProcess(peer, threads,
                                                          args.baseline if peer.endswith("@base") else None)
            workers_meta[f"{peer}/{threads}"] = {"ok": w.ok, "error": w.error, "versions": w.versions}
            if not w.ok:
                _log(f"  {peer}: skipped ({w.error})", args.quiet)
                notes.append(f"{peer} ({threads} thread(s)) skipped: {w.error}")
        # The SGEMM peak takes one sample per round of every config, in the rotation with the
        # peers, so each config's peak share compares samples taken under the same load.
        sgemm = workers[("sgemm", threads)] = _WorkerProcess("sgemm", threads)
        if sgemm.ok:
            r = sgemm.ask({"op": "setup", "config": _config_dict(Config("sgemm", (sgemm_n,), 1, "mse", pool=1,
                                                                          target_s=0.0)), "warm_s": warm_s})
            sgemm.ok, sgemm.error = bool(r.get("ok")), r.get("error")
        if not sgemm.ok:
            notes.append(f"SGEMM peak at {threads} thread(s) not measured: {sgemm.error}")
        for cfg in by_threads[threads]:
            _log(f"-- {cfg.label()}, {threads} thread(s)", args.quiet)
            raw = {p: {"peer": p, "samples": {"wall": [], "cpu": []}} for p in peers}
            active = []
            for p in peers:
                w = workers[(p, threads)]
                if not w.ok:
                    raw[p]["error"] = w.error
                    continue
                r = w.ask({"op": "setup", "config": _config_dict(cfg), "warm_s": warm_s})
                if r.get("ok"):
                    raw[p]["inner"] = r.get("inner")
                    raw[p]["info"] = {k: v for k, v in r.items() if k not in ("ok", "inner", "versions")}
                    active.append(p)
                else:
                    raw[p]["error"], raw[p]["not_applicable"] = r.get("error"), bool(r.get("na"))
                    if not r.get("na"):
                        _log(f"  {p}: setup failed: {r.get('error')}", args.quiet)
            peak = {"wall": [], "cpu": []}
            for rnd in range(cfg.rounds):
                turn = active + (["sgemm"] if sgemm.ok else [])
                k = rnd % max(1, len(turn))
                for p in turn[k:] + turn[:k]:     # rotate who goes first
                    if threads > 1:
                        time.sleep(SETTLE_S)
                    count = 1 if p == "sgemm" else cfg.per_round
                    r = workers[(p, threads)].ask({"op": "sample", "count": count})
                    dest = peak if p == "sgemm" else raw[p]["samples"]
                    if r.get("ok"):
                        dest["wall"] += r["times"]
                        dest["cpu"] += r["cpu_times"]
                    elif p == "sgemm":
                        sgemm.ok = False
                        notes.append(f"SGEMM peak at {threads} thread(s) failed: {r.get('error')}")
                    else:
                        raw[p]["error"] = r.get("error")
                        active.remove(p)
            for p in peers:
                if workers[(p, threads)].ok:
                    workers[(p, threads)].ask({"op": "free"})
            for p in active:
                unit = (1e6, "us") if cfg.kind == "infer" else (1e3, "ms")
                sm = raw[p]["samples"]
                _log(f"  {p:14s} wall {statistics.median(sm['wall']) * unit[0]:10.3f} {unit[1]}   "
                     f"cpu {statistics.median(sm['cpu']) * unit[0]:10.3f} {unit[1]}", args.quiet)
            if peak["wall"]:
                gf = [2.0 * sgemm_n ** 3 / statistics.median(peak[c]) / 1e9 for c in ("wall", "cpu")]
                _log(f"  sgemm peak     wall {gf[0]:10.1f} GFLOP/s  cpu {gf[1]:10.1f} GFLOP/s", args.quiet)
            groups.append((cfg, threads, [raw[p] for p in peers], (sgemm_n, peak)))
        for w in workers.values():
            w.close()

    order = {c.name: i for i, c in enumerate(configs)}
    groups.sort(key=lambda g: (order[g[0].name], g[1]))
    rows, group_peaks, peaks = _analyse(groups, args.clock)
    _print_tables(rows, peaks, args.clock, args.readme)
    for n in notes:
        print("note:", n)
    loadavg_end = round(os.getloadavg()[0], 2)
    print(f"note: {os.cpu_count()} CPUs here, load average {loadavg} before and {loadavg_end} after the run "
          "(other processes share them: compare rows within a run, not across runs).")

    result = {
        "meta": {"date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "argv": list(argv) if argv is not None else sys.argv[1:], "quick": bool(args.quick),
                 "host": platform.node(), "machine": platform.machine(), "cpu": _cpu_name(),
                 "cpu_count": os.cpu_count(), "loadavg": loadavg, "loadavg_end": loadavg_end,
                 "python": platform.python_version(), "lr": bench_peers.LR,
                 "baseline": os.path.abspath(args.baseline) if args.baseline else None,
                 "wall_s": round(time.time() - started, 1), "clock": args.clock,
                 "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
                 "workers": workers_meta, "notes": notes},
        "configs": [_config_dict(c) for c in configs],
        "peak": {str(t): p for t, p in peaks.items()},
        "groups": group_peaks,
        "rows": rows,
    }
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    # bench/results/ of a source checkout; the copy installed with the package (`mlpcore bench`)
    # writes to the current directory instead of into site-packages.
    here = os.path.dirname(os.path.abspath(__file__))
    default_dir = os.path.join(here, "results") if os.path.basename(here) == "bench" else os.getcwd()
    out = args.out or os.path.join(default_dir, f"compare-{stamp}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    _log(f"wrote {out}", args.quiet)
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
