"""mlpcore on CUDA vs PyTorch eager on CUDA: steady-state training steps per second.

    python bench/cuda_compare.py            # every configuration
    python bench/cuda_compare.py --quick    # fewer steps, smaller sweep (a smoke run)
    python bench/cuda_compare.py --json out.json

Configurations: the CPU table's MLPs (DESIGN.md) and the tiny-cuda-nn regime — MLPs of width 64
and 128 with 5 hidden layers (ReLU, MSE) at batch 2^14 .. 2^18. One training step = forward,
loss, backward, SGD update, fp32 (TF32 off on both sides).

- mlpcore: the compiled network's `train_epoch` over a data set uploaded once (device-resident;
  batches are consecutive slices, no shuffle), timed per step. Each mlpcore step downloads its loss
  (one synchronisation per step), as `fit` does.
- PyTorch eager: nn.Sequential + torch.optim.SGD over the same device-resident batches, the loop
  a user would write (no `.item()` per step, i.e. no per-step synchronisation).
- "SGEMM share" (GEMM-bound configurations): the time cuBLAS SGEMM needs for exactly the GEMMs of
  one step (forward, weight gradient, input gradient of every layer, timed through torch.mm on
  the same shapes) divided by mlpcore's step time. 1.0 would be a step made of nothing but GEMM.

Budgets: >= 5x PyTorch eager's steps/s on small MLPs; >= 85% of cuBLAS SGEMM throughput
on GEMM-bound configurations. Exits with a message (status 0) where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _fail_soft(msg: str) -> None:
    print(f"cuda_compare: {msg}; nothing to measure.")
    sys.exit(0)


try:
    import mlpcore as mc
except ImportError as e:  # pragma: no cover - depends on the environment
    _fail_soft(f"mlpcore is not importable ({e})")
if not mc.cuda_available():
    _fail_soft("mlpcore has no usable CUDA device: " + mc._core.cuda_unavailable_reason())
try:
    import torch
except ImportError:
    torch = None
if torch is not None and not torch.cuda.is_available():
    print("cuda_compare: PyTorch has no CUDA device (CPU-only torch?); measuring mlpcore alone.")
    torch = None
if torch is not None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

CE, MSE = mc._core.LossKind.cross_entropy, mc._core.LossKind.mse


def configs(quick: bool) -> list[dict]:
    """(name, layer widths, batch, loss, gemm_bound)."""
    out = [
        {"name": "[2,16,16,2]", "dims": [2, 16, 16, 2], "batch": 64, "loss": "ce", "gemm_bound": False},
        {
            "name": "[64,64,64,1] MSE",
            "dims": [64, 64, 64, 1],
            "batch": 32,
            "loss": "mse",
            "gemm_bound": False,
        },
        {
            "name": "[784,256,256,10]",
            "dims": [784, 256, 256, 10],
            "batch": 128,
            "loss": "ce",
            "gemm_bound": False,
        },
        {
            "name": "[1024,4096,4096,1024]",
            "dims": [1024, 4096, 4096, 1024],
            "batch": 512,
            "loss": "ce",
            "gemm_bound": True,
        },
    ]
    exps = [14, 16] if quick else [14, 15, 16, 17, 18]
    for width in (64, 128):
        for e in exps:
            # width-128 at 2^17+ rows is GEMM-dominated; width 64 stays bandwidth/launch-bound.
            out.append(
                {
                    "name": f"{width}x5 hidden",
                    "dims": [width] * 7,
                    "batch": 2**e,
                    "loss": "mse",
                    "gemm_bound": width == 128 and e >= 17,
                }
            )
    return out


def flops_per_step(dims: list[int], batch: int) -> float:
    """6 B sum(in*out): forward, weight gradient and input gradient GEMMs."""
    return 6.0 * batch * sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def make_data(dims, batch, loss, batches, seed=0):
    rng = np.random.default_rng(seed)
    n = batch * batches
    x = rng.standard_normal((n, dims[0]), dtype=np.float32)
    y = rng.integers(0, dims[-1], n) if loss == "ce" else rng.standard_normal((n, dims[-1]), dtype=np.float32)
    return x, y


def bench_mlpcore(cfg, x, y, batches, warmup_batches) -> float:
    """Seconds per step (median of repeats of an epoch of `batches` steps)."""
    dims, batch = cfg["dims"], cfg["batch"]
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(mc.Linear(a, b, seed=i))
        if i + 2 < len(dims):
            layers.append(mc.ReLU())
    model = mc.Sequential(*layers).to("cuda")
    net = model.compiled()
    opt = mc.SGD(model.parameters(), lr=1e-3)
    kind = CE if cfg["loss"] == "ce" else MSE
    xw, yw = x[: batch * warmup_batches], y[: batch * warmup_batches]
    net.train_epoch(opt._core, kind, xw, yw, batch, False, 0)  # sizes the workspace, warms cuBLAS
    net.train_epoch(opt._core, kind, x, y, batch, False, 0)  # uploads the data set once
    times = []
    for r in range(3):
        t0 = time.perf_counter()
        net.train_epoch(opt._core, kind, x, y, batch, False, 0)
        times.append((time.perf_counter() - t0) / batches)
    net.release_device_data()
    return float(np.median(times))


def bench_torch(cfg, x, y, batches, warmup_batches) -> float:
    dims, batch = cfg["dims"], cfg["batch"]
    dev = torch.device("cuda")
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i + 2 < len(dims):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss() if cfg["loss"] == "ce" else torch.nn.MSELoss()
    X = torch.from_numpy(x).to(dev)
    Y = torch.from_numpy(y).to(dev)
    xb = [X[i * batch : (i + 1) * batch] for i in range(batches)]
    yb = [Y[i * batch : (i + 1) * batch] for i in range(batches)]

    def epoch(k):
        for i in range(k):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb[i]), yb[i])
            loss.backward()
            opt.step()

    epoch(min(warmup_batches, batches))
    torch.cuda.synchronize()
    times = []
    for r in range(3):
        t0 = time.perf_counter()
        epoch(batches)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / batches)
    return float(np.median(times))


def cublas_gemm_seconds(dims, batch, reps=10) -> float:
    """Time cuBLAS (through torch.mm, fp32) needs for the GEMMs of one training step."""
    dev = torch.device("cuda")
    total = 0.0
    for i, (fin, fout) in enumerate(zip(dims[:-1], dims[1:])):
        x = torch.randn(batch, fin, device=dev)
        w = torch.randn(fout, fin, device=dev)
        dz = torch.randn(batch, fout, device=dev)
        shapes = [(x, w.t()), (dz.t(), x)]  # forward z = x W^T; dW = dz^T x
        if i > 0:
            shapes.append((dz, w))  # dx = dz W (not needed for the first layer)
        for a, b in shapes:
            out = torch.empty(a.shape[0], b.shape[1], device=dev)
            for _ in range(3):
                torch.mm(a, b, out=out)
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            end.record()
            torch.cuda.synchronize()
            total += start.elapsed_time(end) / 1e3 / reps
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and batch sizes")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)

    print(
        f"mlpcore {mc.__version__}; torch {torch.__version__ if torch else '(none)'}"
        + (f"; GPU {torch.cuda.get_device_name()}" if torch else "")
    )
    hdr = (
        f"{'config':<24}{'batch':>8}{'mlpcore ms':>12}{'steps/s':>10}{'torch ms':>11}{'steps/s':>10}"
        f"{'ratio':>11}{'GFLOP/s':>10}{'SGEMM share':>13}"
    )
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for cfg in configs(args.quick):
        dims, batch = cfg["dims"], cfg["batch"]
        # Enough steps to time, and at most ~1 GiB of data on the device.
        row_bytes = 4 * (dims[0] + dims[-1])
        batches = int(max(4, min(200 if not args.quick else 30, (1 << 30) // max(1, row_bytes * batch))))
        x, y = make_data(dims, batch, cfg["loss"], batches)
        warm = min(batches, 5)
        t_mc = bench_mlpcore(cfg, x, y, batches, warm)
        t_pt = bench_torch(cfg, x, y, batches, warm) if torch else float("nan")
        gflops = flops_per_step(dims, batch) / t_mc / 1e9
        share = cublas_gemm_seconds(dims, batch) / t_mc if (torch and cfg["gemm_bound"]) else float("nan")
        row = {
            "config": cfg["name"],
            "dims": dims,
            "batch": batch,
            "mlpcore_ms": t_mc * 1e3,
            "torch_ms": t_pt * 1e3,
            "mlpcore_steps_per_s": 1 / t_mc,
            "torch_steps_per_s": 1 / t_pt if torch else None,
            "ratio": t_pt / t_mc if torch else None,
            "gflops": gflops,
            "sgemm_share": None if np.isnan(share) else share,
        }
        rows.append(row)
        print(
            f"{cfg['name']:<24}{batch:>8}{t_mc * 1e3:>12.3f}{1 / t_mc:>10.0f}"
            f"{t_pt * 1e3:>11.3f}{(1 / t_pt if torch else float('nan')):>10.0f}"
            f"{(t_pt / t_mc if torch else float('nan')):>10.2f}x{gflops:>10.0f}"
            f"{('' if np.isnan(share) else f'{share:.0%}'):>13}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
