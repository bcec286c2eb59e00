"""The progress display of ``Trainer.fit``: tqdm bars, throttled so that they cost little even on
tiny models. Shown only when asked for, when stdout is a terminal and when tqdm is installed.

What this file is not: the logging callbacks (``callbacks.CSVLogger``, ``TensorBoard``).
"""

from __future__ import annotations

import sys
import time
from typing import Optional

__all__ = ["Progress", "make_progress", "stdout_is_tty"]


def stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


class Progress:
    """tqdm display for fit.

    Epochs that take at least ``EPOCH_BAR_MIN_S`` get one bar each (over their batches, left on
    screen with the epoch's loss and metrics, as Keras prints one line per epoch). Creating and
    closing a bar costs more than a whole epoch of a tiny model, so once an epoch is faster than
    that the remaining epochs share one bar over epochs whose text (last epoch's metrics)
    refreshes at most every ``MININTERVAL`` seconds. On the compiled path the epoch's batches run
    in chunks (one C++ call each) sized so a chunk takes ~``CHUNK_S`` seconds: the bar moves
    without per-batch calls. (bench/ measures the display's cost; it stays within a few per cent.)
    """

    EPOCH_BAR_MIN_S = 0.5
    CHUNK_S = 0.05
    MININTERVAL = 0.1

    def __init__(self, tqdm, epochs: int, num_batches: int):
        self.tqdm, self.epochs, self.num_batches = tqdm, epochs, num_batches
        self.per_epoch = True  # until an epoch turns out to be short
        self.bar = None
        self.fit_bar = None
        self.last_text = 0.0
        self.chunk = 1  # batches per C++ call while a per-epoch bar is shown (adapted)

    def _new(self, **kw):
        return self.tqdm(file=sys.stdout, mininterval=self.MININTERVAL, dynamic_ncols=True, **kw)

    def epoch_begin(self, epoch: int) -> None:
        if self.per_epoch:
            self.bar = self._new(total=self.num_batches, desc=f"Epoch {epoch + 1}/{self.epochs}", unit="batch",
                                 leave=True)
        elif self.fit_bar is None:
            self.fit_bar = self._new(total=self.epochs, initial=epoch, desc="Training", unit="epoch", leave=True)

    def chunk_done(self, seconds: float) -> None:
        """A chunk of batches took ``seconds``: double the next chunk while chunks are short."""
        if seconds < self.CHUNK_S:
            self.chunk = min(2 * self.chunk, self.num_batches)

    def batches_done(self, k: int, loss: float) -> None:
        if self.bar is not None:
            now = time.monotonic()
            if now - self.last_text >= self.MININTERVAL:
                self.bar.set_postfix_str(f"loss={loss:.4g}", refresh=False)
                self.last_text = now
            self.bar.update(k)

    def epoch_end(self, epoch: int, logs: dict, seconds: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self._text(logs), refresh=False)
            self.bar.close()
            self.bar = None
            if seconds < self.EPOCH_BAR_MIN_S:
                self.per_epoch = False
        else:
            now = time.monotonic()
            if now - self.last_text >= self.MININTERVAL or epoch + 1 == self.epochs:
                self.fit_bar.set_postfix_str(self._text(logs), refresh=False)
                self.last_text = now
            self.fit_bar.update(1)

    @staticmethod
    def _text(logs: dict) -> str:
        return ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if isinstance(v, (float, int)))

    def close(self) -> None:
        for b in (self.bar, self.fit_bar):
            if b is not None:
                b.close()
        self.bar = self.fit_bar = None


def make_progress(progress: bool, epochs: int, num_batches: int) -> Optional[Progress]:
    """A display when ``progress`` is on, stdout is a terminal and tqdm is installed (it is a
    core dependency; a --no-deps install without it just trains silently)."""
    if not progress or not stdout_is_tty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return Progress(tqdm, epochs, num_batches)
