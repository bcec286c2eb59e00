"""TEMPORARY: the `_core` contract of this wave (EpochResult, epoch_seed, validate switches) on a
core that does not have it yet. Deleted when branch `core` is merged; every caller then calls
the Network method directly."""

from __future__ import annotations

from typing import NamedTuple

from .. import _core

_MASK64 = (1 << 64) - 1


class _Result(NamedTuple):
    loss: float
    correct: int
    rows: int


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def epoch_seed(seed: int, epoch: int) -> int:
    if hasattr(_core, "epoch_seed"):
        return _core.epoch_seed(seed, epoch)
    return _splitmix64(_splitmix64(int(seed) & _MASK64) ^ int(epoch))


def train_epoch(net, opt, kind, X, y, bs, shuffle, seed, epoch, check_finite, batch_begin=0, batch_end=-1):
    if batch_end < 0:
        r = net.train_epoch(opt, kind, X, y, bs, shuffle, seed, epoch, check_finite, validate=False)
    else:
        r = net.train_epoch(opt, kind, X, y, bs, shuffle, seed, epoch, check_finite, batch_begin=batch_begin,
                            batch_end=batch_end, validate=False)
    if not isinstance(r, float):
        return r
    n = X.shape[0]
    end = -(-n // bs) if batch_end < 0 else batch_end
    return _Result(r, net.last_correct, min(end * bs, n) - batch_begin * bs)


def evaluate(net, kind, X, y, bs):
    try:
        return net.evaluate(kind, X, y, bs, validate=False)
    except TypeError:
        return net.evaluate(kind, X, y, bs)


def train_step(net, opt, kind, X, y, check_finite, validate):
    if validate:
        return net.train_step(opt, kind, X, y, check_finite)
    try:
        return net.train_step(opt, kind, X, y, check_finite, validate=False)
    except TypeError:
        return net.train_step(opt, kind, X, y, check_finite)
