"""How long Ctrl-C takes to stop `Trainer.fit` inside a compiled epoch.

    python bench/interrupt_latency.py [--repeats 5] [--rows 60000]

A child process trains a 784-512-512-10 MLP (Adam, batch 128, one thread) on random data, one
compiled epoch per C++ call; the parent sends SIGINT at a random moment inside the second epoch
and the child reports when KeyboardInterrupt reached Python. Prints the epoch time, the step time
and the latency (signal sent -> exception caught), median and maximum over the repeats. Before
the epoch loop polled for the signal, the latency was the rest of the epoch.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import subprocess
import sys
import time

CHILD = r"""
import sys, time
import numpy as np
import mlpcore as mc
from mlpcore.callbacks import Callback
mc.set_num_threads(1)
rows = int(sys.argv[1])
rng = np.random.default_rng(0)
X, y = rng.standard_normal((rows, 784)).astype(np.float32), rng.integers(0, 10, rows)
model = mc.Sequential(mc.Linear(784, 512), mc.ReLU(), mc.Linear(512, 512), mc.ReLU(), mc.Linear(512, 10))
class Ready(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()
    def on_epoch_end(self, epoch, logs=None):
        print(f"ready {time.time() - self.t0:.6f}", flush=True)
try:
    mc.Trainer(model, batch_size=128).fit(X, y, epochs=3, verbose=0, callbacks=[Ready()])
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.time():.6f}", flush=True)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", type=int, default=60000)
    args = ap.parse_args(argv)
    rng = random.Random(0)
    latencies, epochs = [], []
    for _ in range(args.repeats):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(args.rows)], stdout=subprocess.PIPE, text=True)
        word, epoch_s = child.stdout.readline().split()
        assert word == "ready"
        epochs.append(float(epoch_s))
        time.sleep(rng.uniform(0.1, 0.8) * float(epoch_s))
        sent = time.time()
        child.send_signal(signal.SIGINT)
        out = child.stdout.read().split()
        child.wait()
        if out[:1] != ["interrupted"]:
            print(f"child did not report an interrupt: {out}", file=sys.stderr)
            return 1
        latencies.append(float(out[1]) - sent)
    steps = -(-args.rows // 128)
    with open("/proc/loadavg") as f:
        load = ", ".join(f.read().split()[:3])
    print(f"epoch {statistics.median(epochs):.2f} s ({steps} steps, {statistics.median(epochs) / steps * 1e3:.2f} "
          f"ms/step); Ctrl-C latency median {statistics.median(latencies) * 1e3:.1f} ms, max "
          f"{max(latencies) * 1e3:.1f} ms over {len(latencies)} runs; load average {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
