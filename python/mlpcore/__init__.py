"""mlpcore: fast multilayer perceptrons with a C++ core (OpenBLAS on the CPU, cuBLAS on NVIDIA GPUs).

    import mlpcore as mc
    model = mc.Sequential(mc.Linear(784, 256), mc.ReLU(), mc.Linear(256, 10))
"""

# The OpenBLAS wheel's library must be loaded before the extension that links it (the extension
# also carries an RPATH to it; this covers unusual install layouts).
import scipy_openblas32 as _scipy_openblas32  # noqa: F401

from . import _core
from ._core import blas_info, cuda_available, get_check_finite, get_num_threads, set_check_finite, set_num_threads
from .check import gradcheck
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .nn import (
    ELU,
    GELU,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    Maxout,
    Module,
    Parameter,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
    TiedLinear,
)
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"

__all__ = [
    "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "ELU", "GELU", "Identity", "LeakyReLU", "Linear", "Maxout",
    "MSELoss", "Module", "Optimizer", "Parameter", "ReLU", "Residual", "RMSprop", "SGD", "Adam", "AdamW",
    "Sequential", "Sigmoid", "SiLU", "Softmax", "Tanh", "TiedLinear", "blas_info", "cuda_available",
    "get_check_finite", "get_num_threads", "gradcheck", "set_check_finite", "set_num_threads", "__version__",
]
