"""Shared plumbing for the examples: the command line, model builders, plot output.

Not an example itself; each example module imports what it needs from here.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable, Optional, Sequence

import numpy as np

import mlpcore as mc
from mlpcore.nn import _mlp


def parse_args(description: str, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """``--quick`` (fewer epochs, as the tests run it), ``--out DIR`` (where plots go, default the
    current directory), ``--seed N`` and ``--threads N`` (BLAS threads; default mlpcore's)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer epochs (what the tests run)")
    p.add_argument("--out", default=".", help="directory for the plot PNGs (default: the current directory)")
    p.add_argument("--seed", type=int, default=0, help="seed for data, weights and shuffling (default 0)")
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: mlpcore's default)")
    args = p.parse_args(argv)
    if args.threads is not None:
        mc.set_num_threads(args.threads)
    return args


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_target(out: Optional[str], filename: str) -> Optional[str]:
    """The path a plot goes to: ``out/filename`` (``out`` is created), or None when no plot
    should be drawn (``out`` is None, or matplotlib is missing: then a note is printed)."""
    if out is None:
        return None
    if not have_matplotlib():
        print(f"(matplotlib is not installed: {filename} not drawn; pip install mlpcore[plot])")
        return None
    os.makedirs(out, exist_ok=True)
    return os.path.join(os.fspath(out), filename)


def figure(ncols: int, size: tuple = (5.0, 4.5)):
    """(fig, axes): a new Agg-rendered figure with ``ncols`` panels side by side (no pyplot)."""
    from mlpcore.plot import _figure

    return _figure(ncols, size)


def save(fig, path: str) -> str:
    fig.savefig(path, dpi=100)
    print(f"saved {path}")
    return path


def mlp(widths: Sequence[int], activation: Callable[[], mc.Module] = mc.ReLU, seed: int = 0,
        init: str = "he_uniform") -> mc.Sequential:
    """Linear(widths[0], widths[1]), activation, ..., Linear(widths[-2], widths[-1]): no activation
    after the last layer (logits or a regression output). Layer i is seeded ``seed + i``."""
    return _mlp(widths, activation, seed=seed, init=init)


def describe(widths: Sequence[int]) -> str:
    """'[2, 10, 2]'-style text for a layer-width list."""
    return "[" + ", ".join(str(w) for w in widths) + "]"


def accuracy(trainer: mc.Trainer, X: np.ndarray, y: np.ndarray) -> float:
    return float(trainer.evaluate(X, y)["accuracy"])
