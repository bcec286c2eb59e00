"""``no_grad``: forward passes that keep nothing for a backward pass (as ``torch.no_grad``).

Inside ``with mlpcore.no_grad():`` a module's forward computes its output only: it saves no
inputs, and a compiled model in eval mode runs the pure batched predict of its network. A
``backward`` after such a forward raises RuntimeError. The switch is per thread, like PyTorch's.
"""

from __future__ import annotations

import functools
import threading


class _Mode(threading.local):
    enabled = True  # read on every forward: one attribute of a thread-local


grad_state = _Mode()


def is_grad_enabled() -> bool:
    """False inside ``mlpcore.no_grad()`` (in this thread)."""
    return grad_state.enabled


class no_grad:
    """Context manager (and decorator) that switches off saving for backward in this thread."""

    def __enter__(self) -> "no_grad":
        self._prev = grad_state.enabled
        grad_state.enabled = False
        return self

    def __exit__(self, *exc) -> None:
        grad_state.enabled = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


class _Skipped:
    """What a module saves for backward under no_grad: backward then says why it cannot run."""

    def __repr__(self) -> str:
        return "<forward ran under mlpcore.no_grad(): nothing saved for backward>"


SKIPPED = _Skipped()


def no_grad_error(owner: str) -> RuntimeError:
    return RuntimeError(f"{owner}.backward after a forward under mlpcore.no_grad(): nothing was saved for "
                        "backward; run the forward outside no_grad()")
