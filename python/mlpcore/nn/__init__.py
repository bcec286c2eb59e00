"""Modules: the PyTorch-shaped building blocks of mlpcore.

Every module has ``forward(x)`` (numpy in, numpy out) and ``backward(grad_output)`` (returns
d loss / d x and accumulates parameter gradients into ``.grad``), both running C++ kernels.
A :class:`Sequential` made only of built-in modules is also *lowered* to one C++ ``Network``;
``model(x)`` / ``model.backward(g)`` and the Trainer run through it, and both paths give the
same numbers.

Layout: ``parameter`` (Parameter, Buffer, arenas), ``module`` (Module), ``registry`` (one entry per
layer: lowering, checkpoint description, PyTorch twin, ...), one file per layer family (``linear``,
``activation``, ``dropout``, ``maxout``, ``residual``, ``layer_norm``, ``batch_norm``,
``sequential``), ``op_layer`` (the module path of layers that are one core op), ``inference`` (the
one eval-mode predict path) and ``grad_mode`` (``no_grad``).

Shapes: inputs are 2-D ``(batch, features)``; ``Linear.weight`` is ``(out, in)`` as in PyTorch
and ``y = x @ weight.T + bias``. Inputs follow the package's policy (see ``help(mlpcore)``):
float32 / float64 are converted to the module's dtype (activations and Dropout compute in the
input's dtype), non-contiguous arrays are copied, other dtypes raise TypeError, NaN / Inf raise
ValueError unless ``mlpcore.set_check_finite(False)``.
"""

from . import inference, registry
from .activation import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .batch_norm import BatchNorm1d
from .dropout import Dropout
from .grad_mode import is_grad_enabled, no_grad
from .layer_norm import LayerNorm
from .linear import Linear, TiedLinear
from .maxout import Maxout
from .module import Module
from .parameter import Buffer, Parameter
from .parameter import input_dtype as _input_dtype  # noqa: F401 (losses and tests use it)
from .residual import Residual
from .sequential import Sequential, _mlp  # noqa: F401 (_mlp: the MLP builder of cli and examples)

__all__ = [
    "BatchNorm1d", "Buffer", "ELU", "GELU", "Dropout", "Identity", "LayerNorm", "LeakyReLU", "Linear", "Maxout",
    "Module", "Parameter", "ReLU",
    "Residual", "Sequential", "Sigmoid", "SiLU", "Softmax", "Tanh", "TiedLinear", "inference",
    "is_grad_enabled", "no_grad", "registry",
]
