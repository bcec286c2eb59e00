"""Data-parallel training throughput: samples/s of ``Trainer.fit(distributed=True)`` for a
[784,1024,1024,10] float32 MLP with a global batch of 512 and one BLAS thread per rank, on 1 rank
and on P ranks of this machine, and the share of a step spent in the all-reduces.

    python bench/distributed.py                       # 1 vs 2 ranks, 5 alternating repeats
    python bench/distributed.py --ranks 1,2,4 --repeats 3 --steps 16

The launcher runs itself as ``mpiexec -n P python bench/distributed.py --worker`` (loopback only),
alternating the rank counts (1, 2, 1, 2, ...) so that a change in the machine's load hits all of
them alike, and prints per rank count the median samples/s, the speed-up over 1 rank, GFLOP/s
(6 * batch * sum(in * out) per step) and the all-reduce share. Needs ``pip install "mlpcore[mpi]"``.

Each worker: the same synthetic data on every rank (``steps`` global batches per epoch), one
warm-up epoch, then ``epochs`` timed epochs inside one ``fit`` (a callback takes each epoch's
wall time; the median epoch gives samples/s). The all-reduce share is the time the compiled epoch
spent in the communicator (``EpochResult.comm_seconds``: transfer plus waiting for the slower
rank) over the epoch's time, from one more epoch run through ``Network.train_epoch``; the
transfer alone (an all-reduce of a gradient-sized buffer after a barrier) is printed beside it.
Timings go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = [784, 1024, 1024, 10]


def worker(args) -> None:
    import numpy as np

    import mlpcore as mc

    mc.set_num_threads(1)
    comm = mc.distributed.init()
    n = args.batch * args.steps
    rng = np.random.default_rng(0)  # the same data on every rank
    X = rng.standard_normal((n, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], n)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers += [mc.Linear(a, b, seed=i)] + ([mc.ReLU()] if i < len(SIZES) - 2 else [])
    model = mc.Sequential(*layers)
    opt = mc.SGD(model.parameters(), lr=0.01, momentum=0.9)
    trainer = mc.Trainer(model, loss=mc.CrossEntropyLoss(), optimizer=opt, batch_size=args.batch,
                         distributed=True)

    class EpochClock(mc.callbacks.Callback):
        times: list = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    trainer.fit(X, y, epochs=1, verbose=0)  # warm-up: workspace, pages, MPI connections
    clock = EpochClock()
    trainer.fit(X, y, epochs=args.epochs, seed=1, verbose=0, callbacks=[clock])
    epoch_s = statistics.median(clock.times)

    net = model.compiled()
    t0 = time.perf_counter()
    r = net.train_epoch(opt._core, trainer.loss.kind, X, y.astype(np.int32), args.batch, True, 7,
                        validate=False, comm=comm)
    comm_share = r.comm_seconds / (time.perf_counter() - t0)

    grads = np.zeros(sum(p.data.size for p in model.parameters()), np.float32)
    transfer = []
    for _ in range(20):
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce_sum(grads)
        transfer.append(time.perf_counter() - t)
    if comm.rank == 0:
        flops = 6.0 * args.batch * sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
        step_s = epoch_s / args.steps
        print(json.dumps({"ranks": comm.size, "samples_per_s": n / epoch_s, "step_ms": step_s * 1e3,
                          "gflops": flops / step_s / 1e9, "comm_share": comm_share,
                          "allreduce_ms": statistics.median(transfer) * 1e3, "params": int(grads.size)}),
              flush=True)


def launcher(args) -> None:
    exe = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(exe) if exe.exists() else "mpiexec"
    ranks = [int(r) for r in args.ranks.split(",")]
    load = os.getloadavg()[0]
    print(f"[784,1024,1024,10] float32, global batch {args.batch}, {args.steps} steps/epoch, 1 BLAS thread per "
          f"rank, {os.cpu_count()} cores; load average {load:.2f} at start", flush=True)
    results: dict = {p: [] for p in ranks}
    for rep in range(args.repeats):
        for p in ranks:
            cmd = [mpiexec, "-hosts", "localhost", "-iface", "lo", "-n", str(p), *args.mpiexec_args.split(),
                   sys.executable, __file__, "--worker", "--batch", str(args.batch), "--steps", str(args.steps),
                   "--epochs", str(args.epochs)]
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if out.returncode != 0:
                sys.exit(f"mpiexec -n {p} failed:\n{out.stderr}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[p].append(r)
            print(f"  repeat {rep + 1}: {p} rank(s) {r['samples_per_s']:8.0f} samples/s  step {r['step_ms']:6.1f} ms"
                  f"  all-reduce {100 * r['comm_share']:4.1f} % of the epoch", flush=True)
    base = statistics.median(r["samples_per_s"] for r in results[ranks[0]])
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end; medians over {args.repeats} repeats:")
    print(f"{'ranks':>5} {'samples/s':>10} {'speed-up':>8} {'GFLOP/s':>8} {'step ms':>8} {'all-reduce':>10} "
          f"{'transfer ms':>11}")
    for p in ranks:
        med = {k: statistics.median(r[k] for r in results[p])
               for k in ("samples_per_s", "gflops", "step_ms", "comm_share", "allreduce_ms")}
        print(f"{p:>5} {med['samples_per_s']:>10.0f} {med['samples_per_s'] / base:>7.2f}x {med['gflops']:>8.1f} "
              f"{med['step_ms']:>8.1f} {100 * med['comm_share']:>9.1f}% {med['allreduce_ms']:>11.2f}")
    print(f"(gradients: {results[ranks[0]][0]['params']:,} float32 values; 'all-reduce': share of the epoch spent "
          "in the communicator, waiting for the other rank included; 'transfer': one all-reduce of that size alone)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", default="1,2", help="rank counts to compare (default 1,2)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=512, help="global batch (default 512)")
    ap.add_argument("--steps", type=int, default=16, help="global batches per epoch (default 16)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per run (default 3)")
    ap.add_argument("--mpiexec-args", default="", help="extra mpiexec options, e.g. '-bind-to core'")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    (worker if args.worker else launcher)(args)


if __name__ == "__main__":
    main()
