"""Argument checks shared by the package, and the seed source behind ``seed=None`` (private).

Every check raises ValueError naming the argument, what was expected and what it got
(``"lr: expected > 0, got -1"``). Accepted scalars are Python or numpy ints / floats, never
bools (``True`` is an ``int`` in Python, but ``epochs=True`` is a bug, not 1).

Seeds: :func:`seed_or_random` turns a ``seed=`` argument into a 64-bit int. ``None`` draws the
next seed of the global stream: after ``mlpcore.manual_seed(n)`` that is ``epoch_seed(n, 0),
epoch_seed(n, 1), ...`` (the core's portable hash: the same numbers on every platform), so a model
built twice after the same ``manual_seed`` has the same weights and dropout masks; never seeded,
draws come from ``os.urandom``. The stream hands out seeds only; it is no generator for data.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Optional

import numpy as np

from . import _core

_INT = (int, np.integer)
_NUMBER = (int, float, np.integer, np.floating)


def is_int(v) -> bool:
    """A Python or numpy integer (not a bool)."""
    return isinstance(v, _INT) and not isinstance(v, bool)


def is_finite(v) -> bool:
    """A Python or numpy int / float (not a bool) with a finite value."""
    if isinstance(v, bool) or not isinstance(v, _NUMBER):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def pos_int(name: str, v) -> int:
    """An int >= 1."""
    if not is_int(v) or v < 1:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def finite_float(name: str, v) -> float:
    """Any finite number."""
    if not is_finite(v):
        raise ValueError(f"{name}: expected a finite float, got {v!r}")
    return float(v)


def positive(name: str, v, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with allow_zero); the two failures have their own message."""
    if not is_finite(v):
        raise ValueError(f"{name}: expected a finite number, got {v!r}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: expected {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return float(v)


def nonneg(name: str, v, integer: bool = False):
    """A finite number >= 0 as a float, or with integer=True an int >= 0 as an int."""
    ok = (is_int(v) and is_finite(v)) if integer else is_finite(v)
    if not ok or v < 0:
        raise ValueError(f"{name}: expected a non-negative {'int' if integer else 'number'}, got {v!r}")
    return int(v) if integer else float(v)


_seed_lock = threading.Lock()
_stream: Optional[list] = None  # [seed, draws so far] after manual_seed; None: draws are random


def seed_or_random(seed: Optional[int]) -> int:
    """A seed as an unsigned 64-bit int (larger ints wrap); None draws the next seed of the
    global stream (see the module docs)."""
    if seed is None:
        with _seed_lock:
            if _stream is None:
                return int.from_bytes(os.urandom(8), "little")
            n = _stream[1]
            _stream[1] = n + 1
            return int(_core.epoch_seed(_stream[0], n))
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int or None, got {seed!r}")
    return int(seed) & 0xFFFFFFFFFFFFFFFF


def manual_seed(seed: int) -> None:
    """Seed the stream that layers built without ``seed=`` (Linear, Maxout, Dropout) and every
    other ``seed=None`` draw from, as ``torch.manual_seed`` does: ``mc.manual_seed(0)`` then the
    same model-building code gives the same model. Larger ints wrap to 64 bits."""
    global _stream
    if seed is None:
        raise ValueError("seed: expected a non-negative int, got None")
    s = seed_or_random(seed)
    with _seed_lock:
        _stream = [s, 0]
