"""What ``Trainer.fit`` prints, by Keras' ``verbose``: 0 nothing, 1 progress bars, 2 one line per
epoch, ``"auto"`` (the default) bars in a terminal or a notebook and one line per epoch when
stdout is a file or a pipe (logs, CI, ``nohup``), where a bar would be a stream of carriage
returns.

Bars are tqdm's: ``tqdm.notebook`` (a widget) in a Jupyter kernel when ipywidgets is installed,
the text bar otherwise; throttled so that they cost little even on tiny models. Without tqdm
(a ``--no-deps`` install) verbose 1 prints the per-epoch lines instead.

What this file is not: the logging callbacks (``callbacks.CSVLogger``, ``TensorBoard``).
"""

from __future__ import annotations

import sys
import time
from typing import Optional, Union

__all__ = ["EpochLines", "Progress", "in_notebook", "make_progress", "resolve_verbose", "stdout_is_tty"]


def stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, JupyterLab, VS Code, Colab): IPython is loaded and
    its running shell belongs to a kernel app. Terminal IPython is not a notebook (its stdout is
    a terminal). IPython is never imported here."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    if get is None:
        return False
    try:
        shell = get()
    except Exception:  # noqa: BLE001 - a half-initialised IPython: not a notebook
        return False
    if shell is None:
        return False
    return type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in (getattr(shell, "config", None) or {})


def resolve_verbose(verbose: Union[str, int, bool]) -> int:
    """``verbose`` as 0, 1 or 2 (``"auto"``: 1 in a terminal or a notebook, else 2)."""
    if isinstance(verbose, str):
        if verbose != "auto":
            raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")
        return 1 if stdout_is_tty() or in_notebook() else 2
    if verbose in (0, 1, 2) and not isinstance(verbose, float):  # True / False count as 1 / 0, as in Keras
        return int(verbose)
    raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")


def _logs_text(logs: dict, sep: str, fmt: str) -> str:
    return sep.join(f"{k}{fmt.format(v)}" for k, v in logs.items() if isinstance(v, (float, int)))


class EpochLines:
    """verbose=2: one line per epoch on stdout, flushed (``Epoch 3/30 - 0.02s - loss: 0.1234 -
    accuracy: 0.9688``), as Keras prints it; epochs counted from 1. Never splits the C++ epoch."""

    per_epoch = False  # the trainer runs each epoch in one C++ call
    chunk = 0

    def __init__(self, epochs: int):
        self.epochs = epochs

    def epoch_begin(self, epoch: int) -> None:
        pass

    def chunk_done(self, seconds: float) -> None:
        pass

    def batches_done(self, k: int, loss: float) -> None:
        pass

    def epoch_end(self, epoch: int, logs: dict, seconds: float) -> None:
        text = _logs_text(logs, " - ", ": {:.4f}")
        print(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s" + (f" - {text}" if text else ""),
              file=sys.stdout, flush=True)

    def close(self) -> None:
        pass


class Progress:
    """verbose=1: tqdm bars.

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
        return _logs_text(logs, ", ", "={:.4g}")

    def close(self) -> None:
        for b in (self.bar, self.fit_bar):
            if b is not None:
                b.close()
        self.bar = self.fit_bar = None


def bar_class(notebook: bool):
    """The tqdm class for verbose=1: the notebook widget when in a notebook with ipywidgets, the
    text bar otherwise; None without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    if notebook:
        try:
            import tqdm.notebook as tn
        except ImportError:
            return tqdm
        if getattr(tn, "IProgress", None) is not None:  # ipywidgets is installed
            return tn.tqdm
    return tqdm


def make_progress(verbose: Union[str, int, bool], epochs: int,
                  num_batches: int) -> Optional[Union[Progress, EpochLines]]:
    """The display for ``fit(verbose=...)``: None (0), :class:`Progress` bars (1) or
    :class:`EpochLines` (2; also 1 without tqdm)."""
    level = resolve_verbose(verbose)
    if level == 0:
        return None
    if level == 1:
        cls = bar_class(in_notebook())
        if cls is not None:
            return Progress(cls, epochs, num_batches)
    return EpochLines(epochs)
