"""The workloads of bench/compare.py and the peers that run them, except mlpcore's own (those are
in compare_worker.py): PyTorch eager, hand-written PyTorch, NumPy, scikit-learn, JAX and the SGEMM
peak. Each runner builds its model and data for a `Config` and `run(n)` performs n training steps
(or n inference calls), cycling through a pool of distinct batches. See compare.py's docstring for
what each peer does and how it is timed. Importing this file imports no peer library.
"""

import os
from dataclasses import dataclass, field, fields

LR = 1e-3          # plain SGD everywhere (no momentum, no weight decay): the update the fused peers can do


@dataclass(frozen=True)
class Config:
    """One benchmark row group: an MLP of widths `sizes` (ReLU between layers), batch B."""

    name: str
    sizes: tuple
    batch: int
    loss: str                      # "ce" (int class ids) or "mse"
    kind: str = "train"            # "train": one SGD step per call; "infer": eval-mode forward of a batch
    threads: tuple = (1,)          # default thread counts (--threads overrides)
    pool: int = 8                  # distinct batches cycled through (the data never repeats in a row)
    rounds: int = 7                # interleaved rounds
    per_round: int = 3             # timed samples per peer per round
    target_s: float = 0.03         # duration of one timed sample
    budget: dict = field(default_factory=dict)    # of the compiled path's rows (mlpcore, mlpcore-epoch)
    entry: tuple = ()              # mlpcore's other entry points measured here (the other peers: n/a)
    entry_budgets: dict = field(default_factory=dict)  # peer -> its budget
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
            return f"{arch} batch-{self.batch} inference"
        return f"{arch} B{self.batch} {self.loss.upper()}" + (f" +{self.norm.upper()}" if self.norm else "")



def config_dict(cfg: Config) -> dict:
    """The JSON form of a Config (what workers are sent and results record)."""
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def config_from_dict(d: dict) -> Config:
    known = {f.name for f in fields(Config)}
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


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
    """Base: `run(n)` performs n steps (or n inference calls), cycling through the pool. `unit`: the
    number of steps `run` is called with a multiple of (a pass over the pool)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.unit = cfg.pool

    def run(self, n: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def info(self) -> dict:
        return {}

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
            X, B = self.X, self.cfg.batch
            for k in range(n):
                j = (self.i + k) % P
                self.model.predict_proba(X[j * B:(j + 1) * B])
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
        norms = ([(jnp.ones((o,), jnp.float32), jnp.zeros((o,), jnp.float32)) for o in S[1:-1]]
                 if cfg.norm else [])
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
            grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
            (loss, batch), grads = grad_fn(params, norms, x, y)
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

        self.n, self.unit = n, 1
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
