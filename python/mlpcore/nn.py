"""Modules: the PyTorch-shaped building blocks of mlpcore.

Every module has ``forward(x)`` (numpy in, numpy out) and ``backward(grad_output)`` (returns
d loss / d x and accumulates parameter gradients into ``.grad``), both running C++ kernels.
A :class:`Sequential` made only of built-in modules is also *lowered* to one C++
``Network`` that the :class:`~mlpcore.trainer.Trainer` drives a whole step or epoch at a time;
both paths call the same kernels on the same parameter memory and give the same numbers.

Parameters live in flat C++ arenas. ``param.data`` and ``param.grad`` are zero-copy numpy
views into them on the CPU (each view keeps the arena alive). A ``Sequential`` gathers the
parameters of all its children into one arena when it is built, so that ``zero_grad`` is one
fill and an optimizer step one pass over memory.

Shapes: inputs are 2-D ``(batch, features)``; ``Linear.weight`` is ``(out, in)`` as in PyTorch
and ``y = x @ weight.T + bias``.

Inputs follow the package's policy (see ``help(mlpcore)``): float32 / float64 are converted to
the module's dtype (activations and Dropout compute in the input's dtype), non-contiguous arrays
are copied, other dtypes raise TypeError, NaN / Inf raise ValueError unless
``mlpcore.set_check_finite(False)``. Parameters are fixed objects (an arena, a compiled network
and optimizers point into them): write new values with ``p.data = a`` (shape-checked, converted,
NaN / Inf refused) or ``p.data[...] = a``; assigning another object to ``layer.weight`` raises
TypeError. ``backward`` before ``forward`` raises RuntimeError.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from . import _core
from ._validate import finite_float, pos_int, seed_or_random

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Offsets in an arena are rounded up to 16 elements (64 bytes in float32): aligned rows for the
# kernels. The padding is zero in both parameters and gradients, so optimizers may sweep over it.
_ALIGN = 16


def _check_dtype(dtype) -> np.dtype:
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise TypeError("dtype: expected float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from e
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def _input_dtype(x) -> np.dtype:
    """The dtype an input-driven module (activation, dropout) computes in."""
    dt = getattr(x, "dtype", None)
    if isinstance(dt, np.dtype) and dt.kind == "f" and dt.itemsize in (4, 8):
        return np.dtype(f"f{dt.itemsize}")  # native byte order
    return np.dtype(np.float32)


def _check_device(device: str) -> str:
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    return "cuda" if device.startswith("cuda") else "cpu"


def _zero_grads(params) -> None:
    """Zero the gradients of ``params``: one fill of each distinct arena they live in (the whole
    arena, so parameters sharing an arena with these are zeroed too, as with Module.zero_grad)."""
    arenas = {id(p._arena): p._arena for p in params}
    for a in arenas.values():
        a.zero_grad()


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class Parameter:
    """A tensor of weights in an arena. ``data`` / ``grad`` are numpy arrays: zero-copy views on
    the CPU (``p.data[...] = a`` writes in place), copies on CUDA. Assigning ``p.data = a``
    copies ``a`` in after a shape check."""

    def __init__(self, arena: "_core.ParamArena", offset: int, shape: tuple):
        self._arena = arena
        self._offset = int(offset)
        self.shape = tuple(int(s) for s in shape)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._arena.dtype)

    @property
    def device(self) -> str:
        return self._arena.device

    def _get(self, grad: bool) -> np.ndarray:
        if self._arena.device == "cpu":
            return self._arena.view(grad, self._offset, list(self.shape))
        return self._arena.read(grad, self._offset, self.numel).reshape(self.shape)

    def _set(self, grad: bool, value) -> None:
        what = "grad" if grad else "data"
        a = np.asarray(value)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"Parameter.{what}: expected a real numeric array, got dtype {a.dtype}")
        if a.shape != self.shape:
            raise ValueError(f"Parameter.{what}: expected shape {self.shape}, got {a.shape}")
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused below
            b = np.ascontiguousarray(a, dtype=self.dtype)
        if not np.all(np.isfinite(b)):
            raise ValueError(f"Parameter.{what}: contains NaN or Inf" + (f" after conversion to {self.dtype}"
                                                                          if np.all(np.isfinite(a)) else ""))
        self._arena.write(grad, self._offset, b.ravel())

    data = property(lambda self: self._get(False), lambda self, v: self._set(False, v))
    grad = property(lambda self: self._get(True), lambda self, v: self._set(True, v))

    def _move(self, arena, offset: int) -> None:
        self._arena, self._offset = arena, int(offset)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device={self.device!r})"


# Bumped whenever something a compiled Network bakes in may have changed anywhere: parameters
# moved to a new arena (another Sequential over the same layers, .to(...)) or a lowered
# hyper-parameter set (Dropout.p, LeakyReLU.negative_slope, ELU.alpha). Sequential.compiled()
# compares it with the value it cached (one int compare) and only then re-checks its lowering.
_generation = 0


def _bump_generation() -> None:
    global _generation
    _generation += 1


def _new_arena(params: list, device: str, dtype: np.dtype) -> None:
    """Move ``params`` (distinct Parameter objects) into one fresh arena, keeping their values."""
    _bump_generation()
    offsets, total = [], 0
    for p in params:
        offsets.append(total)
        total += _align(p.numel)
    arena = _core.ParamArena(device, dtype, total)
    for p, off in zip(params, offsets):
        if p._arena.device == "cpu" and device == "cpu":
            arena.write(False, off, p.data.ravel())
            arena.write(True, off, p.grad.ravel())
        else:
            arena.write(False, off, p._arena.read(False, p._offset, p.numel))
            arena.write(True, off, p._arena.read(True, p._offset, p.numel))
        p._move(arena, off)


class Module:
    """Base class: parameters plus ``forward``/``backward``. Subclass it for a custom layer
    written in numpy; check its ``backward`` with :func:`mlpcore.gradcheck`."""

    training: bool = True

    # ----- structure -----
    def _own_parameters(self) -> list[tuple[str, Parameter]]:
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Parameter)]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(name, Parameter)`` pairs, PyTorch-style names (``0.weight``); shared (tied)
        parameters are listed once."""
        seen = set()
        for name, p in self._named_parameters_all(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters_all(self, prefix: str):
        for k, p in self._own_parameters():
            yield prefix + k, p
        for name, child in self._named_children():
            yield from child._named_parameters_all(f"{prefix}{name}.")

    def _named_children(self) -> list[tuple[str, "Module"]]:
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator["Module"]:
        yield self
        for _, c in self._named_children():
            yield from c.modules()

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero: one fill per arena."""
        _zero_grads(self.parameters())

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = bool(mode)
            net = m.__dict__.get("_network")
            if net is not None:  # the compiled network follows the mode (dropout on or off)
                net.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    @property
    def dtype(self) -> np.dtype:
        ps = self.parameters()
        return ps[0].dtype if ps else np.dtype(np.float32)

    @property
    def device(self) -> str:
        ps = self.parameters()
        return ps[0].device if ps else "cpu"

    def to(self, device: str) -> "Module":
        """Move every parameter (and gradient) to ``device`` ('cpu' or 'cuda'), in one arena."""
        device = _check_device(device)
        if device == "cuda" and not _core.cuda_available():
            raise RuntimeError("mlpcore: device 'cuda' requested but " + _core.cuda_unavailable_reason())
        params = self.parameters()
        if params and any(p.device != device for p in params):
            _new_arena(params, device, self.dtype)
        self._invalidate()
        return self

    def to_torch(self):
        """The equivalent ``torch.nn`` module with a copy of the weights (see mlpcore.io.to_torch)."""
        from .io import to_torch

        return to_torch(self)

    def _invalidate(self) -> None:
        for m in self.modules():
            m.__dict__.pop("_network", None)
            m.__dict__.pop("_compiled_key", None)

    def __setattr__(self, name: str, value) -> None:
        # Parameters are fixed at construction: they live in arenas that a Sequential, its
        # compiled network and optimizers point into, so swapping the object would silently
        # detach them. New values are written into the existing memory instead.
        if not name.startswith("_"):
            current = getattr(self, name, None)
            if isinstance(current, Parameter) and value is not current:
                got = (f"{type(value).__name__} of shape {np.shape(value)}" if hasattr(value, "shape")
                       else type(value).__name__)
                raise TypeError(
                    f"{type(self).__name__}.{name}: a Parameter cannot be replaced (expected the existing "
                    f"Parameter of shape {current.shape}, got {got}); write new values into it with "
                    f"`.{name}.data = a` (shape {current.shape}) or `.{name}.data[...] = a`")
        object.__setattr__(self, name, value)

    # ----- computation -----
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _require_cpu(self) -> None:
        if self.device != "cpu":
            raise RuntimeError(
                f"{type(self).__name__}: the module-by-module path runs on the CPU; on cuda use "
                "Trainer (fit/evaluate/predict), which runs the compiled network on the device"
            )

    def _saved(self, name: str):
        v = self.__dict__.get(name)
        if v is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return v

    # ----- lowering to the compiled network -----
    # Built-in modules return a list of _core.OpSpec (value indices start at `base`);
    # `None` means "not lowerable" (a custom Python module), and the Trainer goes module by module.
    def _lower(self, base: int) -> Optional[list]:
        return None

    # Feature widths for build-time chaining checks: None = any / unknown. Modules that keep the
    # width (activations, dropout) set _passthrough; an unknown custom module ends the checks.
    _passthrough = False

    def _in_features(self) -> Optional[int]:
        return None

    def _out_features(self, in_features: Optional[int]) -> Optional[int]:
        return in_features if self._passthrough else None

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = self._named_children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, c in kids:
            lines.append("  (" + name + "): " + repr(c).replace("\n", "\n  "))
        lines.append(")")
        return "\n".join(lines)


_INITS = {
    "zeros": _core.InitKind.zeros,
    "he_uniform": _core.InitKind.he_uniform,
    "he_normal": _core.InitKind.he_normal,
    "xavier_uniform": _core.InitKind.xavier_uniform,
    "xavier_normal": _core.InitKind.xavier_normal,
}


class Linear(Module):
    """``y = x @ weight.T + bias``; weight (out_features, in_features), bias (out_features,).

    init: he_uniform (default), he_normal, xavier_uniform, xavier_normal or zeros, from our
    portable seeded RNG (the same numbers on every platform); the bias starts at zero.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "he_uniform",
                 dtype=np.float32, seed: Optional[int] = None):
        self.in_features = pos_int("in_features", in_features)
        self.out_features = pos_int("out_features", out_features)
        if init not in _INITS:
            raise ValueError(f"init: expected one of {sorted(_INITS)}, got {init!r}")
        dt = _check_dtype(dtype)
        self.init = init
        self.transposed = False
        nw = self.out_features * self.in_features
        arena = _core.ParamArena("cpu", dt, _align(nw) + (self.out_features if bias else 0))
        arena.init(0, nw, _INITS[init], self.in_features, self.out_features, seed_or_random(seed))
        self.weight = Parameter(arena, 0, (self.out_features, self.in_features))
        self.bias = Parameter(arena, _align(nw), (self.out_features,)) if bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._require_cpu()
        # returns the validated (converted) input too: backward needs it
        z, self._x = _core.linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data,
                                          self.transposed, self.dtype)
        return z

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = self._saved("_x")
        return _core.linear_backward(grad_output, x, self.weight.data, self.weight.grad,
                                     None if self.bias is None else self.bias.grad, True, self.transposed,
                                     self.dtype)

    def _lower(self, base: int) -> list:
        s = _core.OpSpec()
        s.kind = _core.OpKind.linear
        s.in_features, s.out_features = self.in_features, self.out_features
        s.has_bias = self.bias is not None
        s.transposed = self.transposed
        s.weight_off = self.weight._offset
        s.bias_off = self.bias._offset if self.bias is not None else -1
        return [s]

    def _in_features(self):
        return self.in_features

    def _out_features(self, in_features):
        return self.out_features

    def extra_repr(self) -> str:
        extra = ", tied" + (" transposed" if self.transposed else "") if isinstance(self, TiedLinear) else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{extra}"


class TiedLinear(Linear):
    """A Linear layer that reuses ``source``'s weight (tied weights). With ``transpose=True``
    (a tied autoencoder's decoder) it computes ``x @ source.weight + bias``, mapping
    ``source.out_features`` to ``source.in_features``. Gradients of both uses accumulate into
    the one shared ``weight.grad``."""

    def __init__(self, source: Linear, transpose: bool = True, bias: bool = True):
        if not isinstance(source, Linear):
            raise TypeError(f"source: expected a Linear, got {type(source).__name__}")
        self.transposed = bool(transpose)
        self.in_features = source.out_features if transpose else source.in_features
        self.out_features = source.in_features if transpose else source.out_features
        self.init = source.init
        self.weight = source.weight  # the same Parameter object: shared storage and gradient
        if bias:
            arena = _core.ParamArena(source.weight.device, source.dtype, self.out_features)
            self.bias = Parameter(arena, 0, (self.out_features,))
        else:
            self.bias = None


class _Activation(Module):
    _passthrough = True
    kind = _core.ActKind.identity
    param = 0.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        dt = _input_dtype(x)
        xs = _core._as_matrix(x, "x", dt)
        a = _core.act_forward(self.kind, self.param, xs, dt)
        self._x, self._a = xs, a
        # The caller owns the returned array (may change it in place, e.g. `out -= y`); backward
        # needs `a` unchanged, so hand back a copy (an O(B*C) copy, small next to the GEMMs).
        return a.copy()

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        a = self._saved("_a")
        return _core.act_backward(self.kind, self.param, grad_output, self._x, a, a.dtype)

    def _lower(self, base: int) -> list:
        s = _core.OpSpec()
        s.kind = _core.OpKind.activation
        s.act_kind, s.act_param = self.kind, float(self.param)
        return [s]


class Identity(_Activation):
    kind = _core.ActKind.identity


class ReLU(_Activation):
    kind = _core.ActKind.relu


class LeakyReLU(_Activation):
    kind = _core.ActKind.leaky_relu

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    @property
    def negative_slope(self) -> float:
        return self.param

    @negative_slope.setter
    def negative_slope(self, v: float) -> None:
        # `param` is what both paths read; a compiled network baked the old value in
        self.param = finite_float("negative_slope", v)
        _bump_generation()

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Activation):
    kind = _core.ActKind.sigmoid


class Tanh(_Activation):
    kind = _core.ActKind.tanh


class ELU(_Activation):
    kind = _core.ActKind.elu

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    @property
    def alpha(self) -> float:
        return self.param

    @alpha.setter
    def alpha(self, v: float) -> None:
        self.param = finite_float("alpha", v)
        _bump_generation()

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GELU(_Activation):
    """GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's default)."""

    kind = _core.ActKind.gelu


class SiLU(_Activation):
    kind = _core.ActKind.silu


class Softmax(_Activation):
    """Row-wise softmax. For classification prefer raw logits + CrossEntropyLoss (which applies
    log-softmax itself, stably); use Softmax for probabilities at inference."""

    kind = _core.ActKind.softmax


class Dropout(Module):
    """Inverted dropout: in train mode zeroes each value with probability ``p`` and scales the
    rest by 1/(1-p); the identity in eval mode. Masks come from a counter-based RNG seeded by
    ``seed``, shared by both execution paths."""

    def __init__(self, p: float = 0.5, seed: Optional[int] = None):
        self.p = p
        self._passthrough = True
        self._state = _core.DropoutState(seed_or_random(seed))

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, v: float) -> None:
        # both paths read `_p`; a compiled network baked the old value in
        if not isinstance(v, (int, float, np.floating)) or not (0.0 <= float(v) < 1.0):
            raise ValueError(f"p: expected a probability in [0, 1), got {v!r}")
        self._p = float(v)
        _bump_generation()

    def forward(self, x):
        dt = _input_dtype(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            xs = _core._as_matrix(x, "x", dt)
            self._shape, self._dtype = xs.shape, dt
            return xs.copy() if xs is x else xs
        y, self._mask = _core.dropout_forward(x, self.p, self._state, dt)
        return y

    def backward(self, grad_output):
        if "_mask" not in self.__dict__:
            raise RuntimeError("Dropout.backward called before forward")
        if self._mask is None:
            g = _core._as_matrix(grad_output, "grad_output", self._dtype, self._shape[1])
            if g.shape[0] != self._shape[0]:
                raise ValueError(f"grad_output: expected {self._shape[0]} rows (the batch of the last "
                                 f"forward), got shape {g.shape}")
            return g.copy() if g is grad_output else g
        return _core.mul(grad_output, self._mask, self._mask.dtype)

    def _lower(self, base):
        s = _core.OpSpec()
        s.kind = _core.OpKind.dropout
        s.p = self.p
        s.dropout = self._state
        return [s]

    def extra_repr(self):
        return f"p={self.p}"


class Maxout(Module):
    """Maxout unit (Goodfellow et al.): ``pieces`` linear pieces per output, y = max over them.
    weight (out_features * pieces, in_features); output unit c takes the max of rows
    c*pieces ... c*pieces + pieces-1 of ``x @ weight.T + bias``. The gradient goes to the
    winning piece only."""

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, bias: bool = True,
                 init: str = "xavier_uniform", dtype=np.float32, seed: Optional[int] = None):
        self.pieces = pos_int("pieces", pieces)
        self.linear = Linear(in_features, pos_int("out_features", out_features) * self.pieces,
                             bias=bias, init=init, dtype=dtype, seed=seed)
        self.in_features, self.out_features = self.linear.in_features, int(out_features)

    def _named_children(self):
        return []

    def _own_parameters(self):
        ps = [("weight", self.linear.weight)]
        if self.linear.bias is not None:
            ps.append(("bias", self.linear.bias))
        return ps

    weight = property(lambda self: self.linear.weight)
    bias = property(lambda self: self.linear.bias)

    def forward(self, x):
        z = self.linear.forward(x)
        y, self._idx = _core.maxout_forward(z, self.pieces, z.dtype)
        return y

    def backward(self, grad_output):
        idx = self._saved("_idx")
        dz = _core.maxout_backward(grad_output, idx, self.pieces, self.dtype)
        return self.linear.backward(dz)

    def _lower(self, base):
        s = _core.OpSpec()
        s.kind = _core.OpKind.maxout
        s.pieces = self.pieces
        return self.linear._lower(base) + [s]

    def _in_features(self):
        return self.in_features

    def _out_features(self, in_features):
        return self.out_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"


def _check_distinct_modules(owner: str, children: list) -> None:
    """Refuse a module object that appears twice in the tree under ``children`` ((name, module)
    pairs): a module keeps the inputs of its last forward for its backward, so a second use
    overwrites what the first one's backward needs. Shared Parameters (TiedLinear) are fine."""
    seen: dict = {}

    def walk(path: str, m: Module) -> None:
        if id(m) in seen:
            raise ValueError(
                f"{owner}: the same {type(m).__name__} object is at position {seen[id(m)]} and at position "
                f"{path}; a module saves its inputs for backward, so each use needs its own object: create "
                f"a new one (share weights with TiedLinear)")
        seen[id(m)] = path
        for name, c in m._named_children():
            walk(f"{path}.{name}", c)

    for name, m in children:
        walk(name, m)


class Residual(Module):
    """y = x + block(x). The add gate sends the gradient down both paths."""

    def __init__(self, block: Module):
        if not isinstance(block, Module):
            raise TypeError(f"block: expected a Module, got {type(block).__name__}")
        _check_distinct_modules("Residual", [("block", block)])
        self.block = block
        fin, fout = block._in_features(), block._out_features(block._in_features())
        if fin is not None and fout is not None and fin != fout:
            raise ValueError(f"Residual: block maps {fin} features to {fout}; y = x + block(x) needs equal widths")

    # With finiteness checks off, inf + -inf is NaN by policy: numpy's warning about it is noise.
    def forward(self, x):
        y = self.block.forward(x)
        with np.errstate(invalid="ignore", over="ignore"):
            return _core._as_matrix(x, "x", y.dtype) + y

    def backward(self, grad_output):
        g = self.block.backward(grad_output)
        with np.errstate(invalid="ignore", over="ignore"):
            return _core._as_matrix(grad_output, "grad_output", g.dtype) + g

    def _lower(self, base):
        ops = self.block._lower(base)
        if ops is None:
            return None
        s = _core.OpSpec()
        s.kind = _core.OpKind.residual_add
        s.skip = base
        return ops + [s]

    def _in_features(self):
        return self.block._in_features()

    def _out_features(self, in_features):
        return in_features


class Sequential(Module):
    """Modules applied in order. Building one checks that the layers chain (the error names both
    layers) and gathers all parameters into one arena."""

    def __init__(self, *modules: Module):
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        if not modules:
            raise ValueError("Sequential: needs at least one module")
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a mlpcore Module")
        _check_distinct_modules("Sequential", [(str(i), m) for i, m in enumerate(modules)])
        self.layers = list(modules)
        width, source = None, None
        for i, m in enumerate(self.layers):
            fin = m._in_features()
            if fin is not None and width is not None and fin != width:
                raise ValueError(
                    f"Sequential: layer {i} ({type(m).__name__}({m.extra_repr()})) expects {fin} input features "
                    f"but layer {source[0]} ({type(source[1]).__name__}({source[1].extra_repr()})) produces {width}"
                )
            out = m._out_features(width if fin is None else fin)
            if out is not None and (out != width or source is None):
                source = (i, m)
            width = out
        params = self.parameters()
        dtypes = {p.dtype for p in params}
        if len(dtypes) > 1:
            raise TypeError(f"Sequential: layers mix dtypes {sorted(str(d) for d in dtypes)}; build them with one dtype")
        devices = {p.device for p in params}
        if len(devices) > 1:
            raise ValueError(f"Sequential: layers live on different devices {sorted(devices)}")
        if params:
            _new_arena(params, params[0].device, params[0].dtype)
        for m in self.layers:  # networks compiled from the children point at the old arena
            m._invalidate()

    def _named_children(self):
        return [(str(i), m) for i, m in enumerate(self.layers)]

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for m in self.layers:
            x = m.forward(x)
        return x

    def backward(self, grad_output):
        for m in reversed(self.layers):
            grad_output = m.backward(grad_output)
        return grad_output

    def _lower(self, base):
        ops = []
        for m in self.layers:
            sub = m._lower(base + len(ops))
            if sub is None:
                return None
            ops += sub
        return ops

    def _in_features(self):
        for m in self.layers:
            fin = m._in_features()
            if fin is not None or not m._passthrough:
                return fin
        return None

    def _out_features(self, in_features):
        w = in_features
        for m in self.layers:
            w = m._out_features(w if m._in_features() is None else m._in_features())
        return w

    def compiled(self) -> Optional["_core.Network"]:
        """The C++ Network for this model (built once, cached), or None if it contains a module
        that cannot be lowered (a custom Python Module) or its parameters span several arenas.

        Its train_step / train_epoch run zero_grad + forward + backward + optimizer step per batch:
        they overwrite the parameters' ``.grad`` (the module path's ``backward`` accumulates)."""
        key = self.__dict__.get("_compiled_key")
        if key is not None and key[0] == _generation:  # the common case: nothing changed anywhere
            return self.__dict__["_network"]
        # Something moved or changed somewhere (maybe not in this model): redo the lowering and
        # rebuild only if what the network baked in (arena, offsets, op list) differs.
        ops = self._lower(0)
        fin = self._in_features()
        params = self.parameters()
        if ops is None or fin is None or not params or len({id(p._arena) for p in params}) != 1:
            self.__dict__.pop("_network", None)
            self.__dict__.pop("_compiled_key", None)
            return None
        arena = params[0]._arena
        offsets = tuple(p._offset for p in params)
        sig = (fin,) + tuple((s.kind, s.in_features, s.out_features, s.has_bias, s.weight_off, s.bias_off,
                              s.transposed, s.act_kind, s.act_param, s.p, s.pieces, s.skip) for s in ops)
        net = self.__dict__.get("_network")
        if net is None or key is None or key[1] is not arena or key[2] != offsets or key[3] != sig:
            net = _core.Network(arena, ops, fin)
            net.training = self.training
            self.__dict__["_network"] = net
        self.__dict__["_compiled_key"] = (_generation, arena, offsets, sig)
        return net


def _mlp(sizes, activation, seed: int = 0, init: str = "he_uniform",
         last_init: Optional[str] = None) -> Sequential:
    """Linear(sizes[0], sizes[1]), activation(), ..., Linear(sizes[-2], sizes[-1]): no activation
    after the last layer (logits or a regression output). Layer i is seeded ``seed + i``; the
    hidden layers use ``init``, the last one ``last_init`` (default: ``init`` too). Shared by the
    command line and the examples."""
    mods: list = []
    n = len(sizes) - 1  # number of Linear layers
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == n - 1
        mods.append(Linear(a, b, init=(last_init or init) if last else init, seed=seed + i))
        if not last:
            mods.append(activation())
    return Sequential(*mods)
