"""ONNX export: :func:`export_onnx` writes a model's eval-mode forward as an ONNX graph.

What it writes. One graph input ``input`` of shape ``(batch, in_features)`` and one output
``output`` of shape ``(batch, out_features)``; the batch axis is dynamic. Weights are
initializers under the model's PyTorch names (``0.weight``; a tied weight is stored once), in the
model's dtype (float32 or float64). The graph computes what ``model(x)`` computes in eval mode,
whatever mode the model is in (Dropout is the identity; nothing is random).

Which layers, and how: each layer's registry entry (``mlpcore.nn.registry``, its ``onnx`` slot)
emits its own nodes through the :class:`OnnxContext` handed to it, next to the layer's class.
Linear / TiedLinear are one ``Gemm``; ReLU, Sigmoid, Tanh, Softmax (last axis), LeakyReLU and ELU
are their ONNX ops; SiLU is ``x * Sigmoid(x)``; GELU (exact erf form) is the ``Gelu`` op from
opset 20 and ``0.5 x (1 + Erf(x / sqrt 2))`` before; Maxout is ``Gemm``, ``Reshape`` to
``(B, out, pieces)`` and ``ReduceMax``; Residual adds its input; LayerNorm is
``LayerNormalization`` from opset 17 (composed of ReduceMean, Sub, Mul, Sqrt, Div before);
BatchNorm1d is ``BatchNormalization`` with its running statistics as initializers (their PyTorch
names), or the batch statistics composed when it keeps none; Identity and Dropout emit nothing.
A custom Python module has no export: TypeError naming it and its path.

Opsets: ``MIN_OPSET`` (13: Softmax over one axis, optional Gemm bias, every op used in its current
form; older runtimes are not tested) to the newest the installed ``onnx`` knows; default
``DEFAULT_OPSET`` (18, run by ONNX Runtime 1.14 and later). The file's IR version is the lowest
that carries the opset, so older runtimes load it.

float64. ONNX Runtime, the reference runtime, has no float64 kernels for LeakyRelu, Elu, Erf and
Gelu (:data:`NO_FLOAT64_KERNEL`). A float64 graph writes those with ops that do have them:
LeakyReLU and ELU through ``Where``, erf through a Chebyshev fit of erfc (absolute error below
1e-15, see :meth:`OnnxContext.erf`). float32 graphs use the ops themselves.

What this is not: a general converter. Training graphs, CUDA-specific ops and custom modules are
out of scope; ``mlpcore.load`` does not read ONNX back. Needs ``pip install "mlpcore[onnx]"``
(onnx; onnxruntime to run the file).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._version import __version__
from ..nn import registry
from ..nn.module import Module
from .atomic import PathLike, atomic_write

MIN_OPSET = 13
DEFAULT_OPSET = 18
INPUT, OUTPUT = "input", "output"
# ops that ONNX Runtime (1.32 and earlier) runs in float32 but has no float64 kernel for
NO_FLOAT64_KERNEL = frozenset({"LeakyRelu", "Elu", "Erf", "Gelu"})

# erfc(z) = t * exp(-z^2 + P(s)) for z in [0, 6], t = 2 / (2 + z), s = _ERFC_A * t + _ERFC_B in
# [-1, 1], P the Chebyshev series below (Numerical Recipes' erfccheb form, refitted on that
# interval: numpy.polynomial.chebyshev.chebinterpolate of log(erfc(z) / t) + z^2, degree 20,
# math.erfc as the reference). Above 6, erfc < 2.2e-17 and erf is +-1 in float64.
_ERFC_ZMAX = 6.0
_ERFC_A, _ERFC_B = 2.6666666666666665, -1.6666666666666665
_ERFC_CHEB = (
    -0.4985502230126517, 0.5003364655513496, 0.0029079543748733827, -0.004807433804460855,
    1.4741810741363823e-05, 0.00010698213450280916, -6.275656651910222e-06, -2.655586205211888e-06,
    4.146163643496511e-07, 4.7388983750896706e-08, -1.8774034267726082e-08, 4.5312045889364486e-10,
    5.993492860066407e-10, -8.983789625044011e-11, -9.488729104345845e-12, 4.4070168397908805e-12,
    -2.72810994603995e-13, -1.1342859131647013e-13, 2.5566512486953208e-14, -4.023851751633755e-16,
    -1.3927986162568193e-16,
)


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError('ONNX export needs the onnx package: pip install "mlpcore[onnx]" '
                          "(onnx, and onnxruntime to run the file)") from e
    return onnx


class OnnxContext:
    """The graph being written, handed to each layer's ``onnx(m, ctx, x) -> str`` export: ``x`` is
    the name of the value the layer reads, the return value the name of the value it produces.

    - ``opset`` (int), ``dtype`` (the model's numpy dtype);
    - ``node(op, inputs, **attributes) -> str``: one node of the default domain, its output's name;
    - ``param(p) -> str``: the initializer holding Parameter ``p`` (its PyTorch name; once per
      Parameter, so tied weights are shared);
    - ``constant(value) -> str``: an initializer holding ``value`` (floats in the model's dtype,
      integer arrays as int64; equal constants are stored once); ``buffer(name, value) -> str``:
      one holding a buffer under the module's PyTorch name;
    - ``reduce_mean(x, axis)``, ``normalise(x, axis, eps, weight, bias)``: the opset-dependent
      pieces the normalisation layers share;
    - ``export(child, x, name) -> str``: a child module's export, its nodes named under ``name``;
    - ``native(op) -> bool``: whether ``op`` runs in this dtype on ONNX Runtime (False for
      :data:`NO_FLOAT64_KERNEL` in float64): a layer writes the op, or else a composition;
    - ``erf(x) -> str``: erf, as the ``Erf`` op or composed (float64).
    """

    def __init__(self, onnx, root: Module, opset: int):
        self._onnx = onnx
        self.opset = opset
        self.dtype = np.dtype(root.dtype)
        self.nodes: list = []
        self.initializers: list = []
        self._params: dict = {}  # id(Parameter) -> initializer name
        self._param_names = {id(p): n for n, p in root.named_parameters()}
        self._consts: dict = {}  # (dtype, shape, bytes) -> initializer name
        self._used: set = {INPUT}
        self._path: list = []

    # ----- names -----
    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def _prefix(self) -> str:
        return "/".join(self._path)

    # ----- what layers call -----
    def node(self, op: str, inputs: list, **attributes) -> str:
        prefix = self._prefix()
        out = self._fresh(f"{prefix}/{op}" if prefix else op)
        self.nodes.append(self._onnx.helper.make_node(op, list(inputs), [out], name=out, **attributes))
        return out

    def _initializer(self, name: str, array: np.ndarray) -> str:
        name = self._fresh(name)
        self.initializers.append(self._onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def param(self, p) -> str:
        name = self._params.get(id(p))
        if name is None:
            a = p._read().astype(self.dtype, copy=False)
            name = self._params[id(p)] = self._initializer(self._param_names.get(id(p), "param"), a)
        return name

    def buffer(self, name: str, value) -> str:
        """An initializer holding a buffer's ``value`` (in the model's dtype) under the module's
        PyTorch name (``1.running_mean``)."""
        prefix = ".".join(self._path)
        return self._initializer(f"{prefix}.{name}" if prefix else name, np.asarray(value).astype(self.dtype))

    def reduce_mean(self, x: str, axis: int) -> str:
        """The mean over ``axis``, kept as a dimension of 1 (ReduceMean takes its axes as an input
        from opset 18)."""
        if self.opset >= 18:
            return self.node("ReduceMean", [x, self.constant([axis])], keepdims=1)
        return self.node("ReduceMean", [x], axes=[axis], keepdims=1)

    def normalise(self, x: str, axis: int, eps: float, weight=None, bias=None) -> str:
        """(x - mean) / sqrt(var + eps) * weight + bias with the mean and biased variance over
        ``axis`` (LayerNorm: 1, BatchNorm without running statistics: 0); weight / bias: value
        names or None."""
        d = self.node("Sub", [x, self.reduce_mean(x, axis)])
        var = self.reduce_mean(self.node("Mul", [d, d]), axis)
        y = self.node("Div", [d, self.node("Sqrt", [self.node("Add", [var, self.constant(eps)])])])
        y = self.node("Mul", [y, weight]) if weight is not None else y
        return self.node("Add", [y, bias]) if bias is not None else y

    def constant(self, value) -> str:
        a = np.asarray(value)
        a = a.astype(np.int64) if a.dtype.kind in "iub" else a.astype(self.dtype)
        key = (a.dtype.str, a.shape, a.tobytes())
        name = self._consts.get(key)
        if name is None:
            hint = repr(a.item()) if a.size == 1 else "const"
            name = self._consts[key] = self._initializer(f"const/{hint}", a)
        return name

    def export(self, m: Module, x: str, name: Optional[str] = None) -> str:
        e = registry.entry(type(m))
        if name is not None:
            self._path.append(name)
        try:
            where = ".".join(self._path) or "the root"  # the module path, as named_modules() has it
            if e is None:
                raise TypeError(f"export_onnx: {type(m).__name__} at {where!r} is a custom Python module, "
                                f"which has no ONNX export; ONNX covers the built-in layers: {_exportable()}")
            if e.onnx is None:
                raise TypeError(f"export_onnx: {type(m).__name__} at {where!r} has no ONNX export yet; "
                                f"exportable: {_exportable()}")
            return e.onnx(m, self, x)
        finally:
            if name is not None:
                self._path.pop()

    def native(self, op: str) -> bool:
        return not (self.dtype == np.float64 and op in NO_FLOAT64_KERNEL)

    def erf(self, x: str) -> str:
        """erf(x): the Erf op, or in float64 sign(x) (1 - erfc(min(|x|, 6))) with erfc from the
        Chebyshev fit above (Clenshaw's recurrence; absolute error below 1e-15)."""
        if self.native("Erf"):
            return self.node("Erf", [x])
        c = self.constant
        z = self.node("Min", [self.node("Abs", [x]), c(_ERFC_ZMAX)])
        t = self.node("Div", [c(2.0), self.node("Add", [z, c(2.0)])])
        s = self.node("Add", [self.node("Mul", [t, c(_ERFC_A)]), c(_ERFC_B)])
        s2 = self.node("Add", [s, s])
        b1, b2 = c(_ERFC_CHEB[-1]), c(0.0)  # b_k = c_k + 2 s b_{k+1} - b_{k+2}
        for coef in _ERFC_CHEB[-2:0:-1]:
            b1, b2 = self.node("Add", [self.node("Sub", [self.node("Mul", [s2, b1]), b2]), c(coef)]), b1
        series = self.node("Add", [self.node("Sub", [self.node("Mul", [s, b1]), b2]), c(_ERFC_CHEB[0])])
        erfc = self.node("Mul", [t, self.node("Exp", [self.node("Sub", [series, self.node("Mul", [z, z])])])])
        return self.node("Mul", [self.node("Sign", [x]), self.node("Sub", [c(1.0), erfc])])


def _exportable() -> str:
    return ", ".join(n for n in registry.names() if registry.lookup(n).onnx is not None)


def _check_opset(onnx, opset) -> int:
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    is_int = isinstance(opset, (int, np.integer)) and not isinstance(opset, bool)
    if not is_int or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset: expected an int from {MIN_OPSET} to {newest} (the newest this onnx "
                         f"{onnx.__version__} knows), got {opset!r}")
    return int(opset)


def to_onnx(model: Module, opset: Optional[int] = None):
    """The ``onnx.ModelProto`` of ``model``'s eval-mode forward (see the module docs), checked with
    ``onnx.checker.check_model(full_check=True)``."""
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a mlpcore Module, got {type(model).__name__}")
    onnx = _onnx()
    opset = _check_opset(onnx, opset)
    ctx = OnnxContext(onnx, model, opset)
    out = ctx.export(model, INPUT)
    if out == INPUT or not ctx.nodes or ctx.nodes[-1].output[0] != out:  # the identity: a node to name
        out = ctx.node("Identity", [out])
    ctx.nodes[-1].output[0] = OUTPUT  # the last node writes the graph's output (nothing reads it)
    fin, _ = model._features(None)
    fout = model._features(fin)[1] if fin is not None else None
    elem = onnx.helper.np_dtype_to_tensor_dtype(ctx.dtype)
    widths = [fin if fin is not None else "in_features", fout if fout is not None else "out_features"]
    graph = onnx.helper.make_graph(
        ctx.nodes, type(model).__name__,
        [onnx.helper.make_tensor_value_info(INPUT, elem, ["batch", widths[0]])],
        [onnx.helper.make_tensor_value_info(OUTPUT, elem, ["batch", widths[1]])], ctx.initializers)
    ops = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=ops, producer_name="mlpcore",
                                   producer_version=__version__, doc_string=repr(model))
    proto.ir_version = onnx.helper.find_min_ir_version_for(ops)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Module, path: PathLike, opset: Optional[int] = None):
    """Write ``model``'s eval-mode forward to the ONNX file ``path`` (atomically) and return the
    ``onnx.ModelProto``. Input ``input`` (batch, in_features), output ``output`` (batch,
    out_features), dynamic batch, the model's dtype. ``opset``: from ``MIN_OPSET`` (13) to the
    newest the installed onnx knows; default ``DEFAULT_OPSET`` (18). TypeError naming a custom
    module or a layer without an export.

        mc.export_onnx(model, "model.onnx")
        session = onnxruntime.InferenceSession("model.onnx")
        y = session.run(None, {"input": x})[0]
    """
    proto = to_onnx(model, opset)
    atomic_write(path, proto.SerializeToString())
    return proto


__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "NO_FLOAT64_KERNEL", "OnnxContext", "export_onnx", "to_onnx"]
