"""``Sequential``: modules applied in order, and the compiled path.

A Sequential of built-in modules is *lowered* (through the layers' registry entries) to one C++
``Network`` that runs a forward, a backward, a whole training step or a whole epoch in one call.
Both paths call the same kernels on the same parameter memory and give the same numbers, so
``model(x)`` and ``model.backward(g)`` go through the network whenever the model lowers and its
modules are all in one mode (one C++ call each); otherwise, and in ``_forward_modules`` /
``_backward_modules`` (the Trainer's ``compiled=False``), module by module.

Parameter memory: building a Sequential gathers the parameters of its children into one flat
arena (``zero_grad`` is one fill, an optimizer step one pass), but only the arenas that nothing
outside holds pointers into (see ``mlpcore.nn.parameter``: no ``.data`` view handed out, no
optimizer, no compiled network handed out) and that hold nothing but this model's parameters.
The others stay where they are, and the compiled network spans several arenas.
"""

from __future__ import annotations

from typing import Optional

from .. import _core
from . import registry
from .grad_mode import SKIPPED, grad_state, no_grad_error
from .inference import predict
from .linear import Linear
from .module import Module, adopt, check_distinct_modules
from .parameter import gather

_MODULES = "modules"  # Sequential._path: the last forward went module by module


class Sequential(Module):
    """Modules applied in order. Building one checks that the layers chain (the error names both
    layers) and gathers their parameters into one arena where it can (see the module docs)."""

    _chains_children = True

    def __init__(self, *modules: Module):
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        if not modules:
            raise ValueError("Sequential: needs at least one module")
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a mlpcore Module")
        check_distinct_modules("Sequential", [(str(i), m) for i, m in enumerate(modules)])
        width, source = None, None
        for i, m in enumerate(modules):
            fin, out = m._features(width)
            if fin is not None and width is not None and fin != width:
                raise ValueError(
                    f"Sequential: layer {i} ({type(m).__name__}({m.extra_repr()})) expects {fin} input features "
                    f"but layer {source[0]} ({type(source[1]).__name__}({source[1].extra_repr()})) produces {width}")
            if out is not None and (out != width or source is None):
                source = (i, m)
            width = out
        self.layers = tuple(modules)  # fixed: a compiled network and the version depend on the list
        _, _, arenas, device, dtype, stored = self._layout_info()
        dtypes = {a.dtype for a in arenas}
        if len(dtypes) > 1:
            raise TypeError(f"Sequential: layers mix dtypes {sorted(str(d) for d in dtypes)}; "
                            "build them with one dtype")
        devices = {a.device for a in arenas}
        if len(devices) > 1:
            raise ValueError(f"Sequential: layers live on different devices {sorted(devices)}")
        for m in modules:
            adopt(self, m)
        # Gather the arenas that are free to move: not pinned, and holding only this model's
        # parameters and buffers (the parameters first: one optimizer segment).
        ours = {id(p) for p in stored}
        free = [a for a in arenas if not a.pinned and all(id(q) in ours for q in a.params)]
        if len(free) > 1:
            gather([p for p in stored if p._arena in free], device, dtype)

    def _named_children(self):
        return [(str(i), m) for i, m in enumerate(self.layers)]

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    # ----- the compiled network -----
    def _network(self):
        """The network for the current version (built when the version moved), or None."""
        c = self.__dict__.get("_net")
        if c is None or c[0] != self._version:
            c = self._compile()
        return c[1]

    def _compile(self) -> list:
        ctx = registry.LowerContext()
        ops = ctx.lower(self, 0)
        fin = self._features(None)[0]
        arenas = ctx.arenas
        net, mode = None, self.training
        if ops is not None and fin is not None and arenas and len({(a.device, a.dtype) for a in arenas}) == 1:
            net = _core.Network([a.core for a in arenas], ops, fin)
            net.training = mode
        # [version, network, the network's training flag as last set, arenas]
        c = self.__dict__["_net"] = [self._version, net, mode, arenas]
        return c

    def compiled(self) -> Optional["_core.Network"]:
        """The C++ Network for this model (built once, cached until the model changes), or None if
        it contains a module that cannot be lowered (a custom Python Module) or its parameters live
        on several devices.

        Its train_step / train_epoch run zero_grad + forward + backward + optimizer step per batch:
        they overwrite the parameters' ``.grad`` (the module path's ``backward`` accumulates).
        The network holds pointers into the parameters' arenas: they are pinned from now on (never
        gathered into another Sequential). After ``model.to(device)`` it is, like a ``.data`` view,
        one of the old device: call ``compiled()`` again. Switch its mode through ``model.train()`` /
        ``eval()``, not by setting ``net.training``."""
        net = self._network()
        if net is not None:
            for a in self.__dict__["_net"][3]:
                a.pinned = True
        return net

    def _mode_set(self, mode: bool) -> None:
        c = self.__dict__.get("_net")
        if c is not None and c[1] is not None and c[2] is not mode:
            c[1].training = c[2] = mode

    # ----- computation -----
    def forward(self, x):
        """The output for ``x`` (B, in): through the compiled network when the model lowers and is
        in one mode (in eval mode under ``no_grad``: the batched predict), else module by module."""
        d = self.__dict__
        c = d.get("_net")
        if c is None or c[0] != self._version:
            c = self._compile()
        net = c[1]
        if net is None:
            return self._forward_modules(x)
        mode = d.get("_uniform")
        if mode is not True and mode is not False:
            mode = self._uniform_mode()
            if mode is None:  # train and eval modes mixed: each module honours its own
                return self._forward_modules(x)
        if c[2] is not mode:
            net.training = c[2] = mode
        if grad_state.enabled:
            d["_path"] = c
            return net.forward(x)
        d["_path"] = SKIPPED
        return net.forward(x) if mode else predict(self, x)

    def backward(self, grad_output):
        path = self.__dict__.get("_path")
        if path is None:
            raise RuntimeError("Sequential.backward called before forward")
        if path is SKIPPED:
            raise no_grad_error("Sequential")
        if path is _MODULES:
            return self._backward_modules(grad_output)
        if path[0] != self._version:
            raise RuntimeError("Sequential.backward: the model changed since the forward (parameters moved or a "
                               "layer's hyper-parameter was set); run the forward again")
        return path[1].backward(grad_output)

    def _forward_modules(self, x):
        self.__dict__["_path"] = _MODULES
        for m in self.layers:
            x = m._forward_modules(x)
        return x

    def _backward_modules(self, grad_output):
        for m in reversed(self.layers):
            grad_output = m._backward_modules(grad_output)
        return grad_output


# ------------------------------------------------------------------------------------------------
# registry entry
# ------------------------------------------------------------------------------------------------

def _lower(m: Sequential, ctx: registry.LowerContext, base: int) -> Optional[list]:
    ops: list = []
    for c in m.layers:
        sub = ctx.lower(c, base + len(ops))
        if sub is None:
            return None
        ops += sub
    return ops


_PROBE = object()  # a width that only layers keeping their input width hand back


def _features(m: Sequential, width: Optional[int]) -> tuple:
    """(the width the first layer that says expects, the output width for ``width``). The input
    width is looked for past leading layers that keep the width (activations, dropout)."""
    expected, probe, w = None, _PROBE, width
    for c in m.layers:
        if probe is not None:
            fin, out = c._features(probe)
            expected, probe = (fin, None) if fin is not None else (None, probe if out is probe else None)
        w = c._features(w)[1]
    return expected, w


def _onnx(m: Sequential, ctx, x: str) -> str:
    for name, c in m._named_children():
        x = ctx.export(c, x, name)
    return x


def _from_torch(t, torch, convert) -> Sequential:
    layers = [convert(c) for c in t]
    if not layers:
        raise ValueError("module: an empty torch.nn.Sequential has nothing to convert")
    return Sequential(*layers)


registry.register(registry.Layer(
    Sequential,
    describe=lambda m, ctx: {"layers": [ctx.describe(c) for c in m.layers]},
    build=lambda d, ctx, path: Sequential(*[ctx.build(c, ctx.child(path, str(i)))
                                            for i, c in enumerate(d["layers"])]),
    lower=_lower, features=_features,
    torch=registry.TorchTwin(("Sequential",), lambda m, torch, convert: torch.nn.Sequential(
        *[convert(c) for c in m.layers]), _from_torch),
    onnx=_onnx,
))


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
