"""mlpcore: fast multilayer perceptrons with a C++ core (OpenBLAS on the CPU, cuBLAS on NVIDIA GPUs).

    import mlpcore as mc
    model = mc.Sequential(mc.Linear(784, 256), mc.ReLU(), mc.Linear(256, 10))
"""

# The OpenBLAS wheel's library must be loaded before the extension that links it. The installed
# extension carries an RPATH to it ($ORIGIN/../scipy_openblas32/lib); loading it here by path as
# well covers other layouts (in-tree development builds, unusual site-packages arrangements).
import ctypes as _ctypes
import os as _os

import scipy_openblas32 as _scipy_openblas32

_ctypes.CDLL(_os.path.join(_scipy_openblas32.get_lib_dir(), _scipy_openblas32.get_library(True)), _ctypes.RTLD_GLOBAL)

from . import _core  # noqa: E402
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
from . import callbacks
from .callbacks import History
from .trainer import Trainer
from . import datasets
from .io import from_torch, load, load_bytes, load_checkpoint, load_state_into, save, save_bytes, to_torch

__version__ = "0.1.0"

__all__ = [
    "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "ELU", "GELU", "Identity", "LeakyReLU", "Linear", "Maxout",
    "MSELoss", "Module", "Optimizer", "Parameter", "ReLU", "Residual", "RMSprop", "SGD", "Adam", "AdamW",
    "Sequential", "Sigmoid", "SiLU", "Softmax", "Tanh", "TiedLinear", "blas_info", "cuda_available",
    "get_check_finite", "get_num_threads", "gradcheck", "set_check_finite", "set_num_threads", "__version__",
    "Trainer", "History", "callbacks",
    "datasets", "from_torch", "load", "load_bytes", "load_checkpoint", "load_state_into", "save", "save_bytes",
    "to_torch",
]
