"""End-to-end comparison of mlpcore with its peers, side by side in one run.

    python bench/compare.py                       # every configuration, every installed peer
    python bench/compare.py --quick               # a few repetitions (smoke test)
    python bench/compare.py --configs mnist_b128 --peers mlpcore,torch --threads 2

What it measures. One full training step (forward, loss, backward, plain SGD update) of an MLP
with ReLU hidden layers, for each peer. The normalised workloads (``mnist_bn_b128``,
``mnist_ln_b128``) put a BatchNorm1d (train mode: batch statistics, running statistics updated)
or a LayerNorm between each hidden Linear and its ReLU; mlpcore, PyTorch eager and JAX run them
(the other peers have no such layers and report "n/a"):

  mlpcore        the compiled path: ``net = model.compiled(); net.train_step(opt._core, loss, x, y)``
                 (batch-1 inference: ``net.forward(x1)``)
  mlpcore-epoch  the same network driven by ``net.train_epoch`` over the batch pool (no shuffle):
                 one Python call per pool of batches instead of one per step
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

Re-reading. ``--show RESULT.json [--clock cpu]`` prints the table of a saved run again.

Budgets are those of the design notes (DESIGN.md, "Performance budget"); the fastest peer is the
fastest non-mlpcore peer. The results go to JSON (--out; default bench/results/compare-<utc>.json).
``main(argv)`` is the entry point (a CLI may import this file by path); importing it does nothing.
"""

import argparse
import datetime as _dt
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional

# ------------------------------------------------------------------------------------------------
# Configurations, peers, budgets
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One benchmark row group: an MLP of widths `sizes` (ReLU between layers), batch B."""

    name: str
    sizes: tuple
    batch: int
    loss: str                      # "ce" (int class ids) or "mse"
    kind: str = "train"            # "train": one SGD step per call; "infer": forward of one row
    threads: tuple = (1,)          # default thread counts (--threads overrides)
    pool: int = 8                  # distinct batches cycled through (the data never repeats in a row)
    rounds: int = 7                # interleaved rounds
    per_round: int = 3             # timed samples per peer per round
    target_s: float = 0.03         # duration of one timed sample
    budget: dict = field(default_factory=dict)
    norm: str = ""                 # "bn" / "ln": BatchNorm1d / LayerNorm after each hidden Linear

    @property
    def flops(self) -> float:
        """FLOPs per call: 6*B*sum(in*out) for a training step (2 forward + 4 backward),
        2*B*sum(in*out) for inference."""
        macs = sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        return (6.0 if self.kind == "train" else 2.0) * self.batch * macs

    def label(self) -> str:
        arch = "[" + ",".join(str(s) for s in self.sizes) + "]"
        if self.kind == "infer":
            return f"{arch} batch-1 inference"
        return f"{arch} B{self.batch} {self.loss.upper()}" + (f" +{self.norm.upper()}" if self.norm else "")


_TINY = {"text": ">= 20x PyTorch and >= 2x the fastest peer", "min_vs_torch": 20.0, "min_vs_best": 2.0}

CONFIGS = [
    Config("tiny_ce", (2, 16, 16, 2), 64, "ce", pool=16, budget=_TINY),
    Config("tiny_mse", (64, 64, 64, 1), 32, "mse", pool=16, budget=_TINY),
    Config("mnist_b128", (784, 256, 256, 10), 128, "ce", threads=(1, 2), pool=8,
           budget={"text": ">= 1.1x the fastest peer", "min_vs_best": 1.1}),
    Config("wide_b256", (784, 1024, 1024, 10), 256, "ce", pool=4, rounds=5, per_round=2, target_s=0.06,
           budget={}),
    Config("gemm_bound", (1024, 4096, 4096, 1024), 512, "mse", pool=1, rounds=5, per_round=1, target_s=0.0,
           budget={"text": ">= 92% of the SGEMM peak", "min_peak_share": 0.92}),
    Config("infer_b1", (784, 256, 256, 10), 1, "ce", kind="infer", pool=16,
           budget={"text": ">= 2.5x lower latency than the fastest peer", "min_vs_best": 2.5}),
    Config("mnist_bn_b128", (784, 256, 256, 10), 128, "ce", pool=8, norm="bn",
           budget={"text": ">= 1.2x PyTorch eager", "min_vs_torch": 1.2}),
    Config("mnist_ln_b128", (784, 256, 256, 10), 128, "ce", pool=8, norm="ln",
           budget={"text": ">= 1.2x PyTorch eager", "min_vs_torch": 1.2}),
]
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}

PEERS = ["mlpcore", "mlpcore-epoch", "torch", "torch-manual", "numpy", "sklearn", "jax"]
MLPCORE_PEERS = ("mlpcore", "mlpcore-epoch")

LR = 1e-3          # plain SGD everywhere (no momentum, no weight decay): the update the fused peers can do
SGEMM_N = 2048     # square SGEMM for the peak
SETTLE_S = 0.15    # pause between two workers' samples when threads > 1: OpenBLAS's idle threads spin
#                    for ~0.1 s after a call, which would otherwise be charged to the next peer
REPLY_TIMEOUT_S = 900.0


# ------------------------------------------------------------------------------------------------
# Worker side: one process per (peer, threads); imports its library and answers requests.
# ------------------------------------------------------------------------------------------------


def _make_data(cfg: Config, dtype_np):
    """Pool of `cfg.pool` batches: X (pool*B, in) float32, y (pool*B,) int64 class ids or (pool*B, out)."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = cfg.pool * cfg.batch
    X = rng.standard_normal((n, cfg.sizes[0])).astype(dtype_np)
    if cfg.loss == "ce":
        y = rng.integers(0, cfg.sizes[-1], n).astype(np.int64)
    else:
        y = rng.standard_normal((n, cfg.sizes[-1])).astype(dtype_np)
    return X, y


class _Runner:
    """Base: `run(n)` performs n steps (or n inference calls), cycling through the pool."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def run(self, n: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def info(self) -> dict:
        return {}


class _MlpcoreRunner(_Runner):
    def __init__(self, cfg: Config, mc, epoch: bool):
        super().__init__(cfg)
        import numpy as np

        layers = []
        norm = {"bn": mc.BatchNorm1d, "ln": mc.LayerNorm}.get(cfg.norm)
        for i, (a, b) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:])):
            layers.append(mc.Linear(a, b, seed=i))
            if i < len(cfg.sizes) - 2:
                layers += ([norm(b)] if norm else []) + [mc.ReLU()]
        self.model = mc.Sequential(*layers)
        self.net = self.model.compiled()
        if self.net is None:
            raise RuntimeError("model.compiled() returned None")
        self.opt = mc.SGD(self.model.parameters(), lr=LR)
        self.loss = mc._core.LossKind.cross_entropy if cfg.loss == "ce" else mc._core.LossKind.mse
        self.X, self.y = _make_data(cfg, np.float32)
        B = cfg.batch
        self.xs = [self.X[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.ys = [self.y[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.epoch = epoch
        self.i = 0
        if cfg.kind == "infer":
            self.net.training = False

    def run(self, n: int) -> None:
        net, P = self.net, self.cfg.pool
        if self.cfg.kind == "infer":
            xs = self.xs
            for k in range(n):
                net.forward(xs[(self.i + k) % P])
            self.i += n
            return
        core, loss = self.opt._core, self.loss
        if self.epoch:  # n is a multiple of the pool: one call per pass over the pool
            for _ in range(n // P):
                net.train_epoch(core, loss, self.X, self.y, self.cfg.batch, False, 0)
            return
        xs, ys = self.xs, self.ys
        for k in range(n):
            j = (self.i + k) % P
            net.train_step(core, loss, xs[j], ys[j])
        self.i += n


class _TorchRunner(_Runner):
    """PyTorch eager, the way a user writes it."""

    def __init__(self, cfg: Config, torch):
        super().__init__(cfg)
        import numpy as np

        self.torch = torch
        torch.manual_seed(0)
        layers = []
        norm = {"bn": torch.nn.BatchNorm1d, "ln": torch.nn.LayerNorm}.get(cfg.norm)
        for i, (a, b) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(cfg.sizes) - 2:
                layers += ([norm(b)] if norm else []) + [torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers)
        self.lossf = torch.nn.CrossEntropyLoss() if cfg.loss == "ce" else torch.nn.MSELoss()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        X, y = _make_data(cfg, np.float32)
        B = cfg.batch
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        self.xs = [Xt[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.ys = [yt[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.i = 0
        if cfg.kind == "infer":
            self.model.eval()

    def run(self, n: int) -> None:
        P, xs = self.cfg.pool, self.xs
        if self.cfg.kind == "infer":
            model = self.model
            with self.torch.inference_mode():
                for k in range(n):
                    model(xs[(self.i + k) % P])
            self.i += n
            return
        model, lossf, opt, ys = self.model, self.lossf, self.opt, self.ys
        for k in range(n):
            j = (self.i + k) % P
            opt.zero_grad()
            loss = lossf(model(xs[j]), ys[j])
            loss.backward()
            opt.step()
        self.i += n

    def info(self) -> dict:
        return {"torch_threads": self.torch.get_num_threads()}


class _TorchManualRunner(_Runner):
    """Hand-written PyTorch: no autograd, every intermediate preallocated, the SGD update fused into
    the weight-gradient GEMM. Weights in PyTorch's layout W (out, in): z = addmm(b, a, W.T)."""

    def __init__(self, cfg: Config, torch):
        super().__init__(cfg)
        import numpy as np

        self.torch = torch
        torch.manual_seed(0)
        B, S = cfg.batch, cfg.sizes
        L = len(S) - 1
        self.W, self.b = [], []
        for a, o in zip(S[:-1], S[1:]):
            bound = (6.0 / a) ** 0.5  # he_uniform
            self.W.append(torch.empty(o, a).uniform_(-bound, bound))
            self.b.append(torch.zeros(o))
        self.z = [torch.empty(B, o) for o in S[1:]]            # z[l]: layer l output (ReLU'd in place)
        self.mask = [torch.empty(B, o, dtype=torch.bool) for o in S[1:-1]]
        self.da = [torch.empty(B, S[l]) for l in range(1, L)]   # da[l-1]: d loss / d input of layer l
        self.db = [torch.empty(o) for o in S[1:]]
        C = S[-1]
        self.rowmax, self.rowsum = torch.empty(B, 1), torch.empty(B, 1)
        self.picked, self.picked_m1 = torch.empty(B, 1), torch.empty(B, 1)
        X, y = _make_data(cfg, np.float32)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        self.xs = [Xt[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.ys = [yt[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.ys2 = [t.view(B, 1) for t in self.ys] if cfg.loss == "ce" else self.ys
        self.sq = torch.empty(B, C)
        self.i = 0

    def _forward(self, x):
        torch, z = self.torch, self.z
        a = x
        for l, (W, b) in enumerate(zip(self.W, self.b)):
            torch.addmm(b, a, W.t(), out=z[l])
            if l < len(self.W) - 1:
                z[l].relu_()
            a = z[l]
        return a

    def _step(self, x, y, y2):
        torch, cfg = self.torch, self.cfg
        B = cfg.batch
        out = self._forward(x)
        # Loss value and d loss / d out, in place in `out` (it is not needed afterwards).
        if cfg.loss == "ce":
            torch.amax(out, 1, keepdim=True, out=self.rowmax)
            out.sub_(self.rowmax).exp_()
            torch.sum(out, 1, keepdim=True, out=self.rowsum)
            out.div_(self.rowsum)                              # softmax
            torch.gather(out, 1, y2, out=self.picked)          # p[i, y_i]
            torch.sub(self.picked, 1.0, out=self.picked_m1)
            out.scatter_(1, y2, self.picked_m1)                # softmax - onehot
            loss = self.picked.log_().mean().neg_()
            out.mul_(1.0 / B)
        else:
            out.sub_(y)
            torch.mul(out, out, out=self.sq)
            loss = self.sq.mean()
            out.mul_(2.0 / out.numel())                        # 2 (pred - y) / (B * C)
        # Backward, last layer first; dX of layer l uses W[l] before its update, so it comes first.
        dz = out
        for l in range(len(self.W) - 1, -1, -1):
            W, a_prev = self.W[l], (self.z[l - 1] if l > 0 else x)
            if l > 0:
                da = self.da[l - 1]
                torch.mm(dz, W, out=da)                         # (B, in)
                torch.gt(a_prev, 0, out=self.mask[l - 1])
                da.mul_(self.mask[l - 1])                      # ReLU backward
            torch.sum(dz, 0, out=self.db[l])
            W.addmm_(dz.t(), a_prev, alpha=-LR)                # W -= lr * dZ^T A  (fused update)
            self.b[l].add_(self.db[l], alpha=-LR)
            if l > 0:
                dz = da
        return loss

    def run(self, n: int) -> None:
        P = self.cfg.pool
        with self.torch.inference_mode():
            if self.cfg.kind == "infer":
                for k in range(n):
                    self._forward(self.xs[(self.i + k) % P])
            else:
                for k in range(n):
                    j = (self.i + k) % P
                    self._step(self.xs[j], self.ys[j], self.ys2[j])
        self.i += n

    def info(self) -> dict:
        return {"torch_threads": self.torch.get_num_threads()}


class _NumpyRunner(_Runner):
    """A NumPy MLP from scratch: W stored (in, out) so z = a @ W; every buffer preallocated."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        import numpy as np

        self.np = np
        B, S = cfg.batch, cfg.sizes
        L = len(S) - 1
        rng = np.random.default_rng(0)
        f32 = np.float32
        bounds = [(6.0 / a) ** 0.5 for a in S[:-1]]  # he_uniform
        self.W = [rng.uniform(-r, r, (a, o)).astype(f32) for r, a, o in zip(bounds, S[:-1], S[1:])]
        self.b = [np.zeros(o, f32) for o in S[1:]]
        self.z = [np.empty((B, o), f32) for o in S[1:]]
        self.mask = [np.empty((B, o), bool) for o in S[1:-1]]
        self.da = [np.empty((B, S[l]), f32) for l in range(1, L)]
        self.dW = [np.empty_like(W) for W in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        self.rowmax, self.rowsum = np.empty((B, 1), f32), np.empty((B, 1), f32)
        self.sq = np.empty((B, S[-1]), f32)
        self.rows = np.arange(B)
        X, y = _make_data(cfg, f32)
        self.xs = [X[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.ys = [y[i * B:(i + 1) * B] for i in range(cfg.pool)]
        self.i = 0

    def _forward(self, x):
        np, z = self.np, self.z
        a = x
        for l, (W, b) in enumerate(zip(self.W, self.b)):
            np.matmul(a, W, out=z[l])
            z[l] += b
            if l < len(self.W) - 1:
                np.maximum(z[l], 0, out=z[l])
            a = z[l]
        return a

    def _step(self, x, y):
        np, cfg = self.np, self.cfg
        B = cfg.batch
        out = self._forward(x)
        if cfg.loss == "ce":
            np.max(out, axis=1, keepdims=True, out=self.rowmax)
            out -= self.rowmax
            np.exp(out, out=out)
            np.sum(out, axis=1, keepdims=True, out=self.rowsum)
            out /= self.rowsum                                 # softmax
            loss = -float(np.log(out[self.rows, y]).mean())
            out[self.rows, y] -= 1.0
            out *= 1.0 / B
        else:
            out -= y
            np.multiply(out, out, out=self.sq)
            loss = float(self.sq.mean())
            out *= 2.0 / out.size
        dz = out
        for l in range(len(self.W) - 1, -1, -1):
            W, a_prev = self.W[l], (self.z[l - 1] if l > 0 else x)
            np.matmul(a_prev.T, dz, out=self.dW[l])            # (in, out)
            np.sum(dz, axis=0, out=self.db[l])
            if l > 0:
                da = self.da[l - 1]
                np.matmul(dz, W.T, out=da)                     # (B, in), with W before its update
                np.greater(a_prev, 0, out=self.mask[l - 1])
                np.multiply(da, self.mask[l - 1], out=da)
                dz = da
            self.dW[l] *= LR
            W -= self.dW[l]
            self.db[l] *= LR
            self.b[l] -= self.db[l]
        return loss

    def run(self, n: int) -> None:
        P = self.cfg.pool
        if self.cfg.kind == "infer":
            for k in range(n):
                self._forward(self.xs[(self.i + k) % P])
        else:
            for k in range(n):
                j = (self.i + k) % P
                self._step(self.xs[j], self.ys[j])
        self.i += n


class _SklearnRunner(_Runner):
    """scikit-learn's MLP, float32, plain SGD. One partial_fit call covers the whole pool of batches
    (batch_size=B, no shuffle), so the per-call validation is spread over `pool` steps."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        import numpy as np
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        kw = {"hidden_layer_sizes": tuple(cfg.sizes[1:-1]), "activation": "relu", "solver": "sgd",
              "learning_rate_init": LR, "momentum": 0.0, "nesterovs_momentum": False, "alpha": 0.0,
              "batch_size": cfg.batch, "shuffle": False, "random_state": 0}
        self.X, self.y = _make_data(cfg, np.float32)
        if cfg.loss == "ce":
            self.model = MLPClassifier(**kw)
            self.classes = np.arange(cfg.sizes[-1])
            # The first partial_fit builds the layers; it is part of the warm-up, not timed.
            self.model.partial_fit(self.X, self.y, classes=self.classes)
        else:
            self.model = MLPRegressor(**kw)
            self.model.partial_fit(self.X, self.y)
        self.i = 0

    def run(self, n: int) -> None:
        P = self.cfg.pool
        if self.cfg.kind == "infer":
            X = self.X
            for k in range(n):
                j = (self.i + k) % P
                self.model.predict_proba(X[j:j + 1])
            self.i += n
            return
        for _ in range(n // P):
            self.model.partial_fit(self.X, self.y)

    def info(self) -> dict:
        return {"dtype": str(self.model.coefs_[0].dtype), "n_outputs": int(self.model.n_outputs_),
                "out_activation": self.model.out_activation_}


class _JaxRunner(_Runner):
    """JAX: the whole step (value_and_grad + SGD) in one jax.jit, parameters donated."""

    def __init__(self, cfg: Config, jax):
        super().__init__(cfg)
        import numpy as np

        jnp = jax.numpy
        self.jax = jax
        S, B = cfg.sizes, cfg.batch
        rng = np.random.default_rng(0)
        params = []
        for a, o in zip(S[:-1], S[1:]):
            bound = (6.0 / a) ** 0.5
            params.append((jnp.asarray(rng.uniform(-bound, bound, (a, o)).astype(np.float32)),
                           jnp.zeros((o,), jnp.float32)))
        # normalised workloads: (gamma, beta) per hidden layer; BatchNorm also keeps running
        # statistics (mean, var), updated by every step as PyTorch's train mode does
        norms = [(jnp.ones((o,), jnp.float32), jnp.zeros((o,), jnp.float32)) for o in S[1:-1]] if cfg.norm else []
        stats = [(jnp.zeros((o,), jnp.float32), jnp.ones((o,), jnp.float32)) for o in S[1:-1]] \
            if cfg.norm == "bn" else []
        self.params, self.extra = params, (norms, stats)
        X, y = _make_data(cfg, np.float32)
        self.xs = [jax.device_put(X[i * B:(i + 1) * B]) for i in range(cfg.pool)]
        self.ys = [jax.device_put(y[i * B:(i + 1) * B]) for i in range(cfg.pool)]
        eps, momentum = 1e-5, 0.1

        def normalise(x, gb, axis):
            mean = jnp.mean(x, axis=axis, keepdims=True)
            var = jnp.mean((x - mean) ** 2, axis=axis, keepdims=True)
            return (x - mean) / jnp.sqrt(var + eps) * gb[0] + gb[1], mean, var

        def forward(params, norms, x):
            batch = []  # BatchNorm's batch statistics, for the running update
            for i, (W, b) in enumerate(params[:-1]):
                x = x @ W + b
                if cfg.norm:
                    x, mean, var = normalise(x, norms[i], 0 if cfg.norm == "bn" else 1)
                    batch.append((mean[0], var[0]))
                x = jax.nn.relu(x)
            W, b = params[-1]
            return x @ W + b, batch

        if cfg.loss == "ce":
            def loss_fn(params, norms, x, y):
                out, batch = forward(params, norms, x)
                logp = jax.nn.log_softmax(out, axis=1)
                return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), batch
        else:
            def loss_fn(params, norms, x, y):
                out, batch = forward(params, norms, x)
                return jnp.mean((out - y) ** 2), batch

        def step(params, extra, x, y):
            norms, stats = extra
            (loss, batch), grads = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(params, norms, x, y)
            params, norms = jax.tree_util.tree_map(lambda p, g: p - LR * g, (params, norms), grads)
            unbias = x.shape[0] / (x.shape[0] - 1)
            stats = [((1 - momentum) * rm + momentum * m, (1 - momentum) * rv + momentum * v * unbias)
                     for (rm, rv), (m, v) in zip(stats, batch)]
            return params, (norms, stats), loss

        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.fwd = jax.jit(lambda params, extra, x: forward(params, extra[0], x)[0])
        self.i = 0

    def run(self, n: int) -> None:
        P = self.cfg.pool
        if self.cfg.kind == "infer":
            for k in range(n):
                self.fwd(self.params, self.extra, self.xs[(self.i + k) % P]).block_until_ready()
            self.i += n
            return
        params, extra, step, xs, ys = self.params, self.extra, self.step, self.xs, self.ys
        loss = None
        for k in range(n):
            j = (self.i + k) % P
            params, extra, loss = step(params, extra, xs[j], ys[j])
        self.jax.block_until_ready((params, extra, loss))
        self.params, self.extra = params, extra
        self.i += n

    def info(self) -> dict:
        return {"affinity": sorted(os.sched_getaffinity(0)), "devices": [str(d) for d in self.jax.devices()]}


class _SgemmRunner(_Runner):
    """C = A @ B for square float32 n x n matrices through scipy_cblas_sgemm of the OpenBLAS that
    mlpcore links (the library mlpcore preloads), thread count set with mc.set_num_threads."""

    def __init__(self, n: int, mc):
        import ctypes

        import numpy as np
        import scipy_openblas32

        self.n = n
        lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(True)))
        self.sgemm = lib.scipy_cblas_sgemm
        c_int, c_float, c_void_p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
        self.sgemm.argtypes = [c_int, c_int, c_int, c_int, c_int, c_int, c_float, c_void_p, c_int, c_void_p,
                               c_int, c_float, c_void_p, c_int]
        self.sgemm.restype = None
        rng = np.random.default_rng(0)
        self.A = rng.standard_normal((n, n)).astype(np.float32)
        self.B = rng.standard_normal((n, n)).astype(np.float32)
        self.C = np.empty((n, n), np.float32)
        self.flops = 2.0 * n ** 3
        self.mc = mc

    def run(self, k: int) -> None:
        n = self.n
        a, b, c = self.A.ctypes.data, self.B.ctypes.data, self.C.ctypes.data
        for _ in range(k):
            self.sgemm(101, 111, 111, n, n, n, 1.0, a, n, b, n, 0.0, c, n)  # RowMajor, NoTrans, NoTrans

    def info(self) -> dict:
        return {"n": self.n, "blas": self.mc.blas_info(), "threads": self.mc.get_num_threads(),
                "library": "scipy_openblas32 (scipy_cblas_sgemm, the OpenBLAS mlpcore links)"}


def _import_mlpcore():
    """mlpcore as installed, or else from this checkout's python/ (a development build)."""
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
        elif peer in MLPCORE_PEERS or peer == "sgemm":
            mc = _import_mlpcore()
            mc.set_num_threads(threads)
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
            raise ValueError(f"peer: expected one of {PEERS + ['sgemm']}, got {peer!r}")
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
        if self.peer == "sgemm":
            runner = _SgemmRunner(cfg.sizes[0], self.lib["mc"])
        elif self.peer in MLPCORE_PEERS:
            if self.peer == "mlpcore-epoch" and cfg.kind == "infer":
                raise _NotApplicable("train_epoch is a training call; mlpcore's inference row is 'mlpcore'")
            runner = _MlpcoreRunner(cfg, self.lib["mc"], epoch=self.peer == "mlpcore-epoch")
        elif self.peer == "torch":
            runner = _TorchRunner(cfg, self.lib["torch"])
        elif self.peer in ("torch-manual", "numpy", "sklearn") and cfg.norm:
            raise _NotApplicable(f"{self.peer} has no normalisation layers")
        elif self.peer == "torch-manual":
            runner = _TorchManualRunner(cfg, self.lib["torch"])
        elif self.peer == "numpy":
            runner = _NumpyRunner(cfg)
        elif self.peer == "sklearn":
            runner = _SklearnRunner(cfg)
        else:
            runner = _JaxRunner(cfg, self.lib["jax"])
        # Warm-up: at least two passes over the pool and at least warm_s seconds.
        unit = cfg.pool
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
        # Calibrate: `inner` steps (a multiple of the pool) make one timed sample of ~target_s.
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
                cfg = _config_from_dict(req["config"])
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


# ------------------------------------------------------------------------------------------------
# Parent side: start workers, interleave their samples, summarise, print, write JSON.
# ------------------------------------------------------------------------------------------------


class _WorkerProcess:
    """Handle on a worker subprocess for (peer, threads)."""

    def __init__(self, peer: str, threads: int):
        self.peer, self.threads = peer, threads
        env = dict(os.environ)
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
            [sys.executable, "-u", os.path.abspath(__file__), "--worker", peer,
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


def _quantile(xs: list, q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _summary(times: list) -> dict:
    return {"median_s": statistics.median(times), "p25_s": _quantile(times, 0.25),
            "p75_s": _quantile(times, 0.75), "min_s": min(times), "max_s": max(times),
            "n_samples": len(times)}


def _config_dict(cfg: Config) -> dict:
    return {"name": cfg.name, "sizes": list(cfg.sizes), "batch": cfg.batch, "loss": cfg.loss,
            "kind": cfg.kind,
            "threads": list(cfg.threads), "pool": cfg.pool, "rounds": cfg.rounds, "per_round": cfg.per_round,
            "target_s": cfg.target_s, "budget": cfg.budget, "norm": cfg.norm}


def _quick(cfg: Config) -> Config:
    """Few, short repetitions: for smoke tests, not for numbers."""
    return Config(cfg.name, cfg.sizes, cfg.batch, cfg.loss, cfg.kind, cfg.threads, pool=min(cfg.pool, 4),
                  rounds=2, per_round=1, target_s=min(cfg.target_s, 0.003), budget=cfg.budget, norm=cfg.norm)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _evaluate_budget(cfg: Config, row: dict) -> None:
    """Fill row['budget'] / row['budget_met'] / row['budget_detail'] for mlpcore rows."""
    b = cfg.budget
    row["budget"] = b.get("text")
    row["budget_met"] = None
    row["budget_detail"] = None
    if row["peer"] not in MLPCORE_PEERS or not b or row.get("median_s") is None:
        return
    checks, detail = [], []
    if "min_vs_torch" in b:
        v = row.get("vs_torch")
        checks.append(None if v is None else v >= b["min_vs_torch"])
        detail.append(f"{v:.2f}x PyTorch (need {b['min_vs_torch']:g}x)" if v is not None
                      else "no PyTorch row")
    if "min_vs_best" in b:
        v = row.get("vs_best")
        checks.append(None if v is None else v >= b["min_vs_best"])
        detail.append(f"{v:.2f}x {row.get('best_peer')} (need {b['min_vs_best']:g}x)" if v is not None
                      else "no peer row")
    if "min_peak_share" in b:
        v = row.get("peak_share")
        checks.append(None if v is None else v >= b["min_peak_share"])
        detail.append(f"{100 * v:.1f}% of peak (need {100 * b['min_peak_share']:.0f}%)" if v is not None
                      else "no peak")
    row["budget_met"] = None if any(c is None for c in checks) else all(checks)
    row["budget_detail"] = "; ".join(detail)


def _rows_for(cfg: Config, threads: int, raw: list, clock: str) -> list:
    """Analyse one (config, threads) group. `raw`: one dict per peer with "peer", "samples"
    ({"wall": [s], "cpu": [s]}, seconds per step) or "error"/"not_applicable", "inner", "info".
    Returns rows with the chosen clock's summary at top level, both clocks' summaries under "wall"
    and "cpu", throughput and ratios. Peak share and budget are filled by _finish_rows."""
    rows = []
    for rw in raw:
        peer = rw["peer"]
        row = {"config": cfg.name, "label": cfg.label(), "sizes": list(cfg.sizes), "batch": cfg.batch,
               "loss": cfg.loss, "kind": cfg.kind, "threads": threads, "peer": peer,
               "inner": rw.get("inner"), "info": rw.get("info", {}), "samples": rw.get("samples")}
        times = (rw.get("samples") or {}).get(clock)
        if rw.get("error") or not times:
            row.update({"median_s": None, "error": rw.get("error") or "no samples",
                        "not_applicable": bool(rw.get("not_applicable"))})
            rows.append(row)
            continue
        row.update(_summary(times))
        row["median_ms"] = 1e3 * row["median_s"]
        row["samples_per_s"] = cfg.batch / row["median_s"]
        row["gflops"] = cfg.flops / row["median_s"] / 1e9
        for c, ts in rw["samples"].items():
            if ts:
                row[c] = _summary(ts)
        rows.append(row)
    timed = {r["peer"]: r["median_s"] for r in rows if r.get("median_s")}
    others = {p: t for p, t in timed.items() if p not in MLPCORE_PEERS}
    best_peer = min(others, key=others.get) if others else None
    for r in rows:
        if not r.get("median_s"):
            continue
        r["vs_torch"] = timed["torch"] / r["median_s"] if "torch" in timed else None
        r["best_peer"] = best_peer
        r["vs_best"] = others[best_peer] / r["median_s"] if best_peer else None
        r["vs_fastest"] = min(timed.values()) / r["median_s"]
    return rows


def _peak_summary(samples: dict, n: int, clock: str) -> dict:
    """The SGEMM peak at one thread count from its samples ({"wall": [s], "cpu": [s]} per call)."""
    if not samples.get(clock):
        return {"n": n, "clock": clock, "samples_s": samples, "error": "no samples"}
    s = _summary(samples[clock])
    flop = 2.0 * n ** 3
    return {"n": n, "clock": clock, "median_gflops": flop / s["median_s"] / 1e9,
            "max_gflops": flop / s["min_s"] / 1e9, "min_gflops": flop / s["max_s"] / 1e9,
            "samples_s": samples,
            "method": "ctypes scipy_cblas_sgemm (the scipy_openblas32 library mlpcore links), row-major NN, "
                      "float32, threads via mlpcore.set_num_threads"}


def _analyse(groups: list, clock: str) -> tuple:
    """groups: [(Config, threads, raw, peak)] in display order, `peak` = (n, {"wall": [s], "cpu": [s]}):
    the SGEMM samples taken in that group's own rounds. Returns (rows, group_peaks, peaks): rows for
    the chosen clock with peak shares (against the group's own peak) and budgets filled in, the
    peak of each group, and the peak pooled over all groups per thread count."""
    flat, group_peaks, pooled = [], [], {}
    for cfg, threads, raw, (n, samples) in groups:
        rows = _rows_for(cfg, threads, raw, clock)
        gp = _peak_summary(samples, n, clock)
        group_peaks.append({"config": cfg.name, "threads": threads, **gp})
        pool = pooled.setdefault(threads, (n, {"wall": [], "cpu": []}))
        if pool[0] == n:
            for c in ("wall", "cpu"):
                pool[1][c].extend(samples.get(c, []))
        peak = gp.get("median_gflops")
        for r in rows:
            if r.get("median_s"):
                r["peak_gflops"] = peak
                r["peak_share"] = r["gflops"] / peak if peak else None
            _evaluate_budget(cfg, r)
        flat += rows
    peaks = {t: _peak_summary(smp, n, clock) for t, (n, smp) in pooled.items()}
    return flat, group_peaks, peaks


def _fmt_table(rows: list, peaks: dict, clock: str) -> str:
    """Markdown table, one block of rows per (config, threads), then the peaks."""
    head = ("| workload | thr | peer | median (IQR) | samples/s | GFLOP/s | % peak | x PyTorch | x best peer "
            "| budget |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if not r.get("median_s"):
            why = "n/a" if r.get("not_applicable") else "skipped: " + str(r.get("error", ""))[:80]
            lines.append(f"| {r['label']} | {r['threads']} | {r['peer']} | {why} | | | | | | |")
            continue
        if r["kind"] == "infer":
            t = f"{1e6 * r['median_s']:.1f} us ({1e6 * r['p25_s']:.1f}-{1e6 * r['p75_s']:.1f})"
        else:
            t = f"{1e3 * r['median_s']:.3f} ms ({1e3 * r['p25_s']:.3f}-{1e3 * r['p75_s']:.3f})"
        share = f"{100 * r['peak_share']:.0f}%" if r.get("peak_share") is not None else "-"
        vt = f"{r['vs_torch']:.2f}" if r.get("vs_torch") is not None else "-"
        vb = f"{r['vs_best']:.2f}" if r.get("vs_best") is not None else "-"
        if r.get("budget_met") is None:
            pending = r["peer"] in MLPCORE_PEERS and r.get("budget")
            budget = "? " + str(r["budget_detail"]) if pending else ""
        else:
            budget = ("met: " if r["budget_met"] else "MISSED: ") + r["budget_detail"]
        lines.append(f"| {r['label']} | {r['threads']} | {r['peer']} | {t} | {r['samples_per_s']:,.0f} | "
                     f"{r['gflops']:.1f} | {share} | {vt} | {vb} | {budget} |")
    peak_txt = ", ".join(f"{t} thread{'s' if int(t) > 1 else ''}: {p['median_gflops']:.1f} GFLOP/s "
                         f"(n={p['n']}, range {p['min_gflops']:.1f}-{p['max_gflops']:.1f})"
                         for t, p in sorted(peaks.items()) if p.get("median_gflops"))
    lines.append("")
    lines.append(f"SGEMM peak (scipy_cblas_sgemm, median of all samples): {peak_txt or 'not measured'}; "
                 "'% peak' divides by the peak sampled in the same workload's rounds.")
    what = "wall-clock time" if clock == "wall" else "CPU time of each peer's process (all threads)"
    lines.append(f"Times: {what}; median of interleaved rounds, IQR in brackets.")
    return "\n".join(lines)


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
    p.add_argument("--show", default=None, metavar="JSON",
                   help="print the table of an earlier run's JSON (with --clock) instead of measuring")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _config_from_dict(d: dict) -> Config:
    return Config(**{**d, "sizes": tuple(d["sizes"]), "threads": tuple(d["threads"])})


def _show(path: str, clock: str) -> int:
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
    print(_fmt_table(rows, {str(t): p for t, p in peaks.items()}, clock))
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
        return _worker_main(args.worker, args.worker_threads)
    if args.show:
        return _show(args.show, args.clock)

    names = _parse_list(args.configs, [c.name for c in CONFIGS], "configs")
    peers = _parse_list(args.peers, PEERS, "peers")
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
            w = workers[(peer, threads)] = _WorkerProcess(peer, threads)
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
    print(_fmt_table(rows, {str(t): p for t, p in peaks.items()}, args.clock))
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
                 "python": platform.python_version(), "lr": LR,
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
