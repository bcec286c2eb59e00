"""Optimizers, with PyTorch's semantics, running in C++ over the flat parameter arenas.

The Python object holds its Parameters and a C++ optimizer whose segments point at their memory:
a model gathered into one arena (a Sequential) is updated in one pass. The compiled training
path drives this same C++ object (``opt._core``), so both paths update identically.

Building an optimizer pins its parameters' arenas: a Sequential built later leaves them where
they are, so an optimizer made before the model is wrapped keeps working, as in PyTorch. When the
parameters move anyway (``model.to(device)``), the optimizer follows: before its next use it
re-resolves its segments (one flag test per step when nothing moved) and carries its state
(momentum, moments, step count) across.

Frozen parameters (``requires_grad = False``) lie in inactive segments: no update, no work; their
state is kept for when they are unfrozen (freezing re-resolves the segments like a move).
``state_dict`` lays the state out as if nothing were frozen, so checkpoints do not depend on it.
The step count is the optimizer's (shared by its parameters): a parameter unfrozen after k steps
continues Adam's bias correction from k, where PyTorch counts each parameter's own steps.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from . import _core
from ._validate import positive
from .nn.parameter import ALIGN, Parameter, arenas_of, zero_grads

_HYPER = ("lr", "momentum", "weight_decay", "nesterov", "beta1", "beta2", "eps", "alpha", "centered")


def _segments(params: list, split_frozen: bool = True) -> list:
    """(arena, offset, numel, active) runs: parameters adjacent in one arena (up to alignment
    padding, which stays zero) merge into one segment; with ``split_frozen`` only parameters that
    are all trainable or all frozen (``active`` = trainable), so a frozen parameter costs no
    optimizer work. Without it, the layout that ``state_dict`` uses whatever is frozen."""
    order = sorted(params, key=lambda p: (id(p._arena), p._offset))
    segs: list = []
    for p in order:
        active = p.requires_grad or not split_frozen
        if segs and segs[-1][0] is p._arena and segs[-1][3] == active and \
                0 <= p._offset - (segs[-1][1] + segs[-1][2]) < ALIGN:
            a, off, _, _ = segs[-1]
            segs[-1] = (a, off, p._offset + p.numel - off, active)
        else:
            segs.append((p._arena, p._offset, p.numel, active))
    return segs


def _state_positions(segs: list, slots: int, places: list) -> list:
    """For each (arena, offset) in ``places``: (index of its first element in the flat state, the
    length of its segment). The state holds, per segment, ``slots`` runs of the segment's length."""
    starts, total = [], 0
    for seg in segs:
        starts.append(total)
        total += slots * seg[2]
    out = []
    for arena, off in places:
        for (a, o, n, _), start in zip(segs, starts):
            if a is arena and o <= off < o + n:
                out.append((start + off - o, n))
                break
    return out


def _remap(state: np.ndarray, params: list, slots: int, src: tuple, dst: tuple) -> np.ndarray:
    """The flat state of ``params`` laid out by ``src`` = (segments, places), re-laid out by ``dst``."""
    new = np.zeros(slots * sum(seg[2] for seg in dst[0]), dtype=state.dtype)
    before = _state_positions(src[0], slots, src[1])
    after = _state_positions(dst[0], slots, dst[1])
    for q, (ob, on), (nb, nn) in zip(params, before, after):
        for k in range(slots):
            new[nb + k * nn:nb + k * nn + q.numel] = state[ob + k * on:ob + k * on + q.numel]
    return new


class Optimizer:
    def __init__(self, params: Iterable[Parameter], p: "_core.OptimParams"):
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError("params: pass model.parameters(), not the model")
        params = list(params)
        if not params:
            raise ValueError("params: the optimizer got an empty parameter list")
        for i, q in enumerate(params):
            if not isinstance(q, Parameter):
                raise TypeError(f"params[{i}]: expected a mlpcore Parameter, got {type(q).__name__}")
        self.params = list({id(q): q for q in params}.values())
        self._bind(p)

    def _bind(self, p: "_core.OptimParams") -> None:
        """Build the C++ optimizer over the parameters where they are now, pin their arenas and
        ask to be told when one of them moves."""
        for q in self.params:
            q._users.add(self)
            q._arena.pinned = True
        self._segs = _segments(self.params)
        self._places = [(q._arena, q._offset) for q in self.params]
        self._arenas = arenas_of(self.params)
        self._impl = _core.Optimizer(p, [(a.core, off, n, active) for a, off, n, active in self._segs])
        self._moved = False

    def _param_moved(self) -> None:  # called when a parameter moves or is (un)frozen
        self._moved = True

    def _slots(self) -> int:
        """State values per parameter element (SGD 1, Adam 2, RMSprop 3)."""
        return self._impl.state_numel // max(1, sum(seg[2] for seg in self._segs))

    def _follow(self) -> None:
        """Re-resolve the segments after parameters moved or were (un)frozen; the state moves with
        its parameters (a frozen parameter keeps its state, as in PyTorch)."""
        old, old_segs, old_places = self._impl, self._segs, self._places
        p = old.params
        state = old.read_state()
        slots = state.size // max(1, sum(seg[2] for seg in old_segs))
        self._bind(p)
        new = _remap(state, self.params, slots, (old_segs, old_places), (self._segs, self._places))
        self._impl.write_state(new, p.step)

    def _canonical(self) -> tuple:
        """(segments, places) of the layout ``state_dict`` uses: the one with nothing frozen."""
        return _segments(self.params, split_frozen=False), self._places

    @property
    def _core(self) -> "_core.Optimizer":
        """The C++ optimizer, over the parameters where they are now (the compiled path drives it)."""
        if self._moved:
            self._follow()
        return self._impl

    def step(self) -> None:
        """One update of every parameter from its current .grad."""
        if self._moved:
            self._follow()
        self._impl.step()

    def zero_grad(self) -> None:
        """Set the gradients to zero: one fill per arena holding these parameters (other
        parameters in those arenas included, as with Module.zero_grad)."""
        if self._moved:
            self._follow()
        zero_grads(self._arenas)

    @property
    def lr(self) -> float:
        return self._impl.params.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._impl.set_lr(positive("lr", value))

    @property
    def momentum(self) -> float:
        """The momentum (SGD, RMSprop) or beta1 (Adam, AdamW): what OneCycleLR cycles."""
        p = self._impl.params
        return p.beta1 if p.kind in (_core.OptimKind.adam, _core.OptimKind.adamw) else p.momentum

    @momentum.setter
    def momentum(self, value: float) -> None:
        p = self._core.params
        if p.kind in (_core.OptimKind.adam, _core.OptimKind.adamw):
            if not (0.0 <= value < 1.0):
                raise ValueError(f"momentum (Adam's beta1): expected a value in [0, 1), got {value!r}")
            p.beta1 = float(value)
        else:
            if p.nesterov and value <= 0:
                raise ValueError("momentum: Nesterov momentum requires momentum > 0")
            p.momentum = positive("momentum", value, allow_zero=True)
        self._impl.params = p

    @property
    def step_count(self) -> int:
        return self._impl.params.step

    def state_dict(self) -> dict:
        """``{"type", "hyper", "step", "state"}``: the class name, the hyper-parameters, the step
        count and the flat state (momentum / moments over the parameters' arenas) as a numpy copy
        of shape ``(state_numel,)``."""
        impl = self._core
        p = impl.params
        state = impl.read_state()
        if not all(seg[3] for seg in self._segs):  # frozen parameters: the layout with none frozen
            state = _remap(state, self.params, self._slots(), (self._segs, self._places), self._canonical())
        return {"type": type(self).__name__, "hyper": {k: getattr(p, k) for k in _HYPER}, "step": p.step,
                "state": state}

    def load_state_dict(self, sd: dict) -> None:
        """Load a ``state_dict()`` of an optimizer of the same class over parameters of the same
        shapes. ValueError naming every problem (missing, unexpected or unknown keys, another
        optimizer class, a bad hyper-parameter, a state of another shape, a negative step);
        nothing is changed unless everything checks."""
        if not isinstance(sd, dict):
            raise TypeError("state_dict: expected a dict with keys 'type', 'hyper', 'step', 'state' "
                            f"(from Optimizer.state_dict()), got {type(sd).__name__}")
        impl = self._core
        p = impl.params
        keys = ("type", "hyper", "step", "state")
        missing = [k for k in keys if k not in sd]
        unexpected = [k for k in sd if k not in keys]
        problems = []
        if missing or unexpected:
            problems.append(f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
        if "type" in sd and sd["type"] != type(self).__name__:
            problems.append(f"optimizer state is for {sd['type']!r}, not {type(self).__name__}")
        hyper = sd.get("hyper", {})
        if not isinstance(hyper, dict):
            problems.append(f"state_dict['hyper']: expected a dict, got {type(hyper).__name__}")
            hyper = {}
        values = {}
        for k, v in hyper.items():
            try:
                if k not in _HYPER:
                    raise ValueError(f"state_dict['hyper']: unknown hyper-parameter {k!r}")
                if k in ("lr", "eps"):
                    v = positive(f"state_dict['hyper'][{k!r}]", v)
                elif k in ("momentum", "weight_decay", "beta1", "beta2", "alpha"):
                    v = positive(f"state_dict['hyper'][{k!r}]", v, allow_zero=True)
                values[k] = type(getattr(p, k))(v)
            except (TypeError, ValueError) as e:
                problems.append(str(e))
        step = sd.get("step", 0)
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            problems.append(f"state_dict['step']: expected a non-negative int, got {step!r}")
        frozen = not all(seg[3] for seg in self._segs)
        numel = self._slots() * sum(seg[2] for seg in self._canonical()[0]) if frozen else impl.state_numel
        state = np.asarray(sd.get("state", np.zeros(numel)))
        if state.shape != (numel,) or state.dtype.kind not in "fiu":
            problems.append(f"state_dict['state']: expected a float array of shape ({numel},) (the state "
                            f"of these parameters), got {state.dtype} of shape {state.shape}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for k, v in values.items():
            setattr(p, k, v)
        impl.params = p
        if frozen:  # the state dict holds the layout with nothing frozen
            state = _remap(state.astype(impl.read_state().dtype), self.params, self._slots(),
                           self._canonical(), (self._segs, self._places))
        impl.write_state(state, int(step))

    # The C++ optimizer is rebuilt over the unpickled parameters, with its hyper-parameters and state.
    def __getstate__(self) -> dict:
        derived = ("_impl", "_segs", "_places", "_arenas", "_moved")
        state = {k: v for k, v in self.__dict__.items() if k not in derived}
        impl = self._core
        p = impl.params
        state["_cpp"] = (int(p.kind), {k: getattr(p, k) for k in _HYPER}, int(p.step), impl.read_state())
        return state

    def __setstate__(self, state: dict) -> None:
        kind, hyper, step, values = state.pop("_cpp")
        self.__dict__.update(state)
        p = _core.OptimParams()
        p.kind = _core.OptimKind(kind)
        for k, v in hyper.items():
            setattr(p, k, v)
        self._bind(p)
        self._impl.write_state(values, step)

    def __repr__(self) -> str:
        p = self._impl.params
        return f"{type(self).__name__}(lr={p.lr}, momentum={p.momentum}, weight_decay={p.weight_decay})"


class SGD(Optimizer):
    """SGD with momentum (PyTorch: first buffer = gradient, no dampening), Nesterov and L2
    weight decay added to the gradient before momentum."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        p = _core.OptimParams()
        p.kind = _core.OptimKind.sgd
        p.lr = positive("lr", lr)
        p.momentum = positive("momentum", momentum, allow_zero=True)
        p.weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and p.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum requires momentum > 0")
        p.nesterov = bool(nesterov)
        super().__init__(params, p)


def _betas(betas) -> tuple:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}") from None
    for i, b in enumerate((b1, b2)):
        if not (isinstance(b, (int, float, np.floating)) and 0.0 <= b < 1.0):
            raise ValueError(f"betas[{i}]: expected a value in [0, 1), got {b!r}")
    return float(b1), float(b2)


class Adam(Optimizer):
    """Adam (L2 weight decay added to the gradient, as torch.optim.Adam)."""

    _kind = _core.OptimKind.adam

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        p = _core.OptimParams()
        p.kind = self._kind
        p.lr = positive("lr", lr)
        p.beta1, p.beta2 = _betas(betas)
        p.eps = positive("eps", eps)
        p.weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
        super().__init__(params, p)


class AdamW(Adam):
    """AdamW: decoupled weight decay, p *= 1 - lr * weight_decay (torch.optim.AdamW)."""

    _kind = _core.OptimKind.adamw

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop (alpha smoothing, eps outside the sqrt, optional
    momentum and centered variant)."""

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        p = _core.OptimParams()
        p.kind = _core.OptimKind.rmsprop
        p.lr = positive("lr", lr)
        if not (isinstance(alpha, (int, float, np.floating)) and 0.0 <= alpha < 1.0):
            raise ValueError(f"alpha: expected a value in [0, 1), got {alpha!r}")
        p.alpha = float(alpha)
        p.eps = positive("eps", eps)
        p.weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
        p.momentum = positive("momentum", momentum, allow_zero=True)
        p.centered = bool(centered)
        super().__init__(params, p)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scale the gradients of ``parameters`` in place so that their joint L2 norm is at most
    ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``: with ``norm`` the L2 norm of all the
    gradients together, each is multiplied by ``max_norm / (norm + 1e-6)`` when that is below 1.
    Returns ``norm`` (before clipping) as a float.

    parameters: Parameters (an iterable, or one); frozen ones (``requires_grad=False``) are left
    out, as PyTorch leaves out parameters without a gradient. One C++ pass over their gradients
    (runs of adjacent parameters in an arena are one span) for the norm, one to scale.
    max_norm: a finite number >= 0 (ValueError otherwise). norm_type: 2 only (ValueError
    otherwise). error_if_nonfinite: a NaN/Inf norm raises RuntimeError and scales nothing.
    The Trainer's ``clip_grad_norm=`` does the same inside the compiled epoch, between backward
    and the optimizer step.
    """
    max_norm = positive("max_norm", max_norm, allow_zero=True)
    if norm_type != 2 and norm_type != 2.0:
        raise ValueError(f"norm_type: only the L2 norm (2.0) is supported, got {norm_type!r}")
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    params = list(parameters)
    for i, q in enumerate(params):
        if not isinstance(q, Parameter):
            raise TypeError(f"parameters[{i}]: expected a mlpcore Parameter, got {type(q).__name__}")
    params = [q for q in {id(q): q for q in params}.values() if q.requires_grad]
    if not params:
        return 0.0
    if len({(q.device, q.dtype) for q in params}) > 1:
        raise ValueError("parameters: all parameters must share one device and dtype")
    return _core.clip_grad_norm([(a.core, off, n, True) for a, off, n, _ in _segments(params)], max_norm,
                                bool(error_if_nonfinite))
