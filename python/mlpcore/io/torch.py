"""PyTorch interop: ``from_torch`` / ``to_torch`` convert a model and copy its weights.

Which layers convert, and how, is each layer's registry entry (``mlpcore.nn.registry``, its
``torch`` twin): Sequential (nested too), Linear, LayerNorm, BatchNorm1d (with its running
statistics), ReLU, LeakyReLU, Sigmoid, Tanh, ELU, GELU (exact), SiLU, Softmax (last dim), Identity
and Dropout. TiedLinear, Maxout, Residual and custom modules have no torch.nn twin. Both directions
keep the train / eval mode and which parameters are frozen (``requires_grad``). For weights only,
``model.state_dict()`` holds numpy copies under PyTorch's names
(``torch_model.load_state_dict({k: torch.from_numpy(v) ...})``).
"""

from __future__ import annotations

from ..nn import registry
from ..nn.module import Module


def from_torch(module) -> Module:
    """A mlpcore model with the same structure, weights (float32 or float64, copied), train / eval
    mode and frozen parameters as a ``torch.nn`` module; TypeError naming an unsupported layer."""
    return registry.from_torch(module)


def to_torch(model: Module):
    """A ``torch.nn`` module with the same structure and weights as ``model`` (on the CPU, same
    dtype, same train/eval mode and frozen parameters); TypeError for a layer without a torch.nn
    twin."""
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a mlpcore Module, got {type(model).__name__}")
    return registry.to_torch(model)
