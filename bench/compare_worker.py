"""The worker side of bench/compare.py: one process per (peer, threads) imports its library, builds
the runner of each workload it is asked for and answers timing requests over a pipe. Here too:
mlpcore's runner, for every entry point the comparison measures (see compare.py's docstring).
Importing this file imports no peer library.
"""

import importlib.util
import json
import os
import platform
import sys
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


P = _sibling("peers")
Config, LR, _Runner, _make_data = P.Config, P.LR, P._Runner, P._make_data

# mlpcore's rows: the compiled path (the design's training and inference budgets) and the other
# entry points (applicable to a workload when its Config.entry names them).
COMPILED = ("mlpcore", "mlpcore-epoch")
ENTRY = ("mlpcore-fit", "mlpcore-tob", "mlpcore-loop", "mlpcore-call", "mlpcore-nograd", "mlpcore-inv")
MLPCORE_KINDS = COMPILED + ENTRY
FIT_BATCHES = 50   # batches per Trainer.fit epoch (mlpcore-fit)


class _MlpcoreRunner(_Runner):
    """One of mlpcore's entry points (`kind`) on an MLP with ReLU hidden layers:

    mlpcore         compiled: ``net.train_step(opt._core, loss, x, y)``; inference ``net.predict(x, B)``
    mlpcore-epoch   compiled: ``net.train_epoch`` over the pool (no shuffle), one call per pass
    mlpcore-fit     ``Trainer.fit`` (shuffled, as by default) over FIT_BATCHES batches per epoch; per batch
    mlpcore-tob     ``Trainer.train_on_batch(x, y)``
    mlpcore-loop    the PyTorch-style loop: ``opt.zero_grad(); l = loss(model(x), y);
                    model.backward(loss.backward()); opt.step()``
    mlpcore-call    eval-mode ``model(x)``
    mlpcore-nograd  eval-mode ``model(x)`` under ``mc.no_grad()``
    mlpcore-inv     ``net.predict(x, B)`` with ``mc.set_batch_invariant(True)`` (set by the worker)
    """

    def __init__(self, cfg: Config, mc, kind: str):
        super().__init__(cfg)
        import numpy as np

        infer = cfg.kind == "infer"
        if kind in ENTRY and kind not in cfg.entry:
            raise _NotApplicable(f"{kind} is not measured on {cfg.name}")
        if kind == "mlpcore-epoch" and infer:
            raise _NotApplicable("train_epoch is a training call; mlpcore's inference row is 'mlpcore'")
        layers = []
        # looked up only when asked for: a baseline build may predate the norm layers
        norm = getattr(mc, {"bn": "BatchNorm1d", "ln": "LayerNorm"}[cfg.norm]) if cfg.norm else None
        for i, (a, b) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:])):
            layers.append(mc.Linear(a, b, seed=i))
            if i < len(cfg.sizes) - 2:
                layers += ([norm(b)] if norm else []) + [mc.ReLU()]
        self.mc, self.model = mc, mc.Sequential(*layers)
        self.net = self.model.compiled()
        if self.net is None:
            raise RuntimeError("model.compiled() returned None")
        self.opt = mc.SGD(self.model.parameters(), lr=LR)
        self.loss = mc._core.LossKind.cross_entropy if cfg.loss == "ce" else mc._core.LossKind.mse
        self.X, self.y = _make_data(cfg, np.float32)
        B = cfg.batch
        self.xs = [self.X[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.ys = [self.y[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.i = 0
        if infer:
            self.model.eval()
        if kind in ("mlpcore-fit", "mlpcore-tob", "mlpcore-loop"):
            self.lossf = mc.CrossEntropyLoss() if cfg.loss == "ce" else mc.MSELoss()
            self.trainer = mc.Trainer(self.model, loss=self.lossf, optimizer=self.opt, batch_size=B)
        if kind == "mlpcore-fit":
            self.unit = FIT_BATCHES
            self.fX, self.fy = _make_data(replace(cfg, pool=FIT_BATCHES), np.float32)
        self.run = getattr(self, "_" + kind.replace("-", "_"))

    def _batches(self, n: int):
        P = self.cfg.pool
        for k in range(n):
            j = (self.i + k) % P
            yield self.xs[j], self.ys[j]
        self.i += n

    def _mlpcore(self, n: int) -> None:
        net = self.net
        if self.cfg.kind == "infer":
            B = self.cfg.batch
            for x, _ in self._batches(n):
                net.predict(x, B)
            return
        core, loss = self.opt._core, self.loss
        for x, y in self._batches(n):
            net.train_step(core, loss, x, y)

    _mlpcore_inv = _mlpcore

    def _mlpcore_epoch(self, n: int) -> None:  # n is a multiple of the pool: one call per pass
        core, loss = self.opt._core, self.loss
        for _ in range(n // self.cfg.pool):
            self.net.train_epoch(core, loss, self.X, self.y, self.cfg.batch, False, 0)

    def _mlpcore_fit(self, n: int) -> None:  # n is a multiple of FIT_BATCHES
        self.trainer.fit(self.fX, self.fy, epochs=n // FIT_BATCHES, verbose=0)

    def _mlpcore_tob(self, n: int) -> None:
        tob = self.trainer.train_on_batch
        for x, y in self._batches(n):
            tob(x, y)

    def _mlpcore_loop(self, n: int) -> None:
        model, lossf, opt = self.model, self.lossf, self.opt
        for x, y in self._batches(n):
            opt.zero_grad()
            lossf(model(x), y)
            model.backward(lossf.backward())
            opt.step()

    def _mlpcore_call(self, n: int) -> None:
        model = self.model
        for x, _ in self._batches(n):
            model(x)

    def _mlpcore_nograd(self, n: int) -> None:
        model = self.model
        with self.mc.no_grad():
            for x, _ in self._batches(n):
                model(x)

    def info(self) -> dict:
        get = getattr(self.mc, "get_batch_invariant", None)  # a baseline build may predate the switch
        return {"batch_invariant": bool(get()) if get else None}


def _import_mlpcore():
    """mlpcore as installed (or, for a baseline worker, the build its PYTHONPATH names), or else
    from this checkout's python/ (a development build)."""
    try:
        import mlpcore
    except ImportError:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.insert(0, os.path.join(repo, "python"))
        import mlpcore
    return mlpcore


class _Worker:
    """The state of one worker process: its peer's library, configured for `threads` threads."""

    def __init__(self, peer: str, threads: int):
        self.peer, self.threads = peer, threads
        self.kind = peer.split("@")[0]  # "mlpcore@base": the mlpcore peer, run by another build
        self.runner: Optional[_Runner] = None
        self.lib: dict = {}
        self.versions: dict = {"python": platform.python_version()}
        self._limits = None
        if peer == "jax":
            cores = sorted(os.sched_getaffinity(0))
            if len(cores) < threads:
                raise RuntimeError(f"jax: {threads} threads asked for but only cores {cores} are available")
            os.sched_setaffinity(0, set(cores[:threads]))
            import jax

            jax.config.update("jax_platforms", "cpu")
            self.lib["jax"] = jax
            self.versions["jax"] = jax.__version__
        elif peer in ("torch", "torch-manual"):
            import torch

            torch.set_num_threads(threads)
            self.lib["torch"] = torch
            self.versions["torch"] = torch.__version__
            self.versions["blas"] = ("mkl" if torch.backends.mkl.is_available() else "?") + \
                f", cpu capability {torch.backends.cpu.get_cpu_capability()}"
        elif self.kind in MLPCORE_KINDS or peer == "sgemm":
            mc = _import_mlpcore()
            mc.set_num_threads(threads)
            if self.kind == "mlpcore-inv":
                mc.set_batch_invariant(True)
            self.lib["mc"] = mc
            self.versions["mlpcore"] = getattr(mc, "__version__", "?")
            self.versions["mlpcore_path"] = os.path.dirname(mc.__file__)
            self.versions["blas"] = mc.blas_info()
        elif peer in ("numpy", "sklearn"):
            try:  # the environment variables already set the count; threadpoolctl makes sure
                from threadpoolctl import threadpool_limits
            except ImportError:
                threadpool_limits = None
            if threadpool_limits is not None:
                self._limits = threadpool_limits(limits=threads)  # the limit holds while this object lives
            if peer == "sklearn":
                import sklearn

                self.versions["sklearn"] = sklearn.__version__
        else:
            raise ValueError(f"peer: expected one of mlpcore's, torch, torch-manual, numpy, sklearn, jax or "
                             f"sgemm, got {peer!r}")
        import numpy as np

        self.versions["numpy"] = np.__version__
        if peer in ("numpy", "sklearn"):
            try:
                deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
                self.versions["blas"] = deps.get("openblas configuration") or deps.get("name")
            except (TypeError, KeyError):  # numpy < 1.26 has no mode="dicts"
                self.versions["blas"] = "unknown (numpy without show_config(mode='dicts'))"

    def setup(self, cfg: Config, warm_s: float) -> dict:
        self.runner = None
        kind = self.kind
        if kind == "sgemm":
            runner = P._SgemmRunner(cfg.sizes[0], self.lib["mc"])
        elif kind in MLPCORE_KINDS:
            runner = _MlpcoreRunner(cfg, self.lib["mc"], kind)
        elif kind == "torch":
            runner = P._TorchRunner(cfg, self.lib["torch"])
        elif kind in ("torch-manual", "numpy", "sklearn") and cfg.norm:
            raise _NotApplicable(f"{kind} has no normalisation layers")
        elif kind == "torch-manual":
            runner = P._TorchManualRunner(cfg, self.lib["torch"])
        elif kind == "numpy":
            runner = P._NumpyRunner(cfg)
        elif kind == "sklearn":
            runner = P._SklearnRunner(cfg)
        else:
            runner = P._JaxRunner(cfg, self.lib["jax"])
        # Warm-up: at least two passes over the pool (or the runner's unit) and at least warm_s seconds.
        unit = runner.unit
        runner.run(unit)
        t0 = time.perf_counter()
        runner.run(unit)
        per = time.perf_counter() - t0
        spent = per
        while spent < warm_s:
            t0 = time.perf_counter()
            runner.run(unit)
            per = time.perf_counter() - t0
            spent += per
        # Calibrate: `inner` steps (a multiple of the unit) make one timed sample of ~target_s.
        reps = max(1, round(cfg.target_s / max(per, 1e-9)))
        self.inner = unit * reps
        self.runner = runner
        info = {"inner": self.inner, "versions": self.versions}
        info.update(runner.info())
        if self._limits is not None:
            from threadpoolctl import threadpool_info

            info["threadpools"] = [{"api": d.get("internal_api"), "threads": d.get("num_threads")}
                                   for d in threadpool_info()]
        return info

    def sample(self, count: int) -> tuple:
        """`count` timed samples, each the mean seconds per step over `inner` steps: wall-clock, and
        the CPU time of this process (all its threads), which preemption by other processes on a
        shared machine does not inflate."""
        wall, cpu = [], []
        for _ in range(count):
            c0, t0 = time.process_time(), time.perf_counter()
            self.runner.run(self.inner)
            t1, c1 = time.perf_counter(), time.process_time()
            wall.append((t1 - t0) / self.inner)
            cpu.append((c1 - c0) / self.inner)
        return wall, cpu


class _NotApplicable(Exception):
    pass


def _worker_main(peer: str, threads: int) -> int:
    """Request loop: one JSON object per line on stdin, one reply per line on the protocol pipe.
    Anything a library prints to stdout is sent to stderr instead, so the protocol stays clean."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        worker = _Worker(peer, threads)
    except Exception as e:  # missing library, bad setup: the parent records the reason and goes on
        reply({"ok": False, "error": f"{type(e).__name__}: {e}"})
        return 0
    reply({"ok": True, "versions": worker.versions})
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "setup":
                cfg = P.config_from_dict(req["config"])
                reply({"ok": True, **worker.setup(cfg, req["warm_s"])})
            elif op == "sample":
                wall, cpu = worker.sample(req["count"])
                reply({"ok": True, "times": wall, "cpu_times": cpu})
            elif op == "free":
                worker.runner = None
                reply({"ok": True})
            elif op == "quit":
                reply({"ok": True})
                return 0
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except _NotApplicable as e:
            reply({"ok": False, "na": True, "error": str(e)})
        except Exception as e:
            worker.runner = None
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"})
    return 0
