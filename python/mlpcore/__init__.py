"""mlpcore: fast multilayer perceptrons with a C++ core (OpenBLAS on the CPU, cuBLAS on NVIDIA GPUs).

    import mlpcore as mc
    model = mc.Sequential(mc.Linear(784, 256), mc.ReLU(), mc.Linear(256, 10))

Inputs. Arrays are 2-D (batch, features) with at least one row and one column. float32 and
float64 are accepted and converted to the model's dtype (float64 beyond float32's range becomes
inf, and is refused as such); non-contiguous, Fortran-ordered and byte-swapped arrays are copied.
Modules and losses refuse int, float16, bool, complex, object and string arrays with TypeError;
the training entry points (``Trainer``, the scikit-learn estimators, the command line) go through
one input-preparation path (``mlpcore.training.data``) that also casts int and bool arrays and
pandas frames of numeric / bool columns, naming a column that cannot be cast. NaN and Inf are
refused with ValueError by default; ``mc.set_check_finite(False)`` skips that scan for speed, and
then NaN/Inf propagate (parameters never take NaN/Inf through ``param.data = a``). Class ids are
1-D integers in [0, classes) (a one-hot matrix is refused with a hint); the other losses' targets
are shaped like the output, or (n,) for one output; sample weights are (n,) finite reals. A batch_size larger than the data is one batch of all
rows. Bad values and shapes raise ValueError, bad types TypeError, both naming the argument, what
was expected and what was given; state errors (backward before forward, backward after a
forward under ``mc.no_grad()``, CUDA where there is none) raise RuntimeError. No input from Python may crash the process.

Training guard. A non-finite loss stops training (``Network.train_epoch`` / ``train_step``
with ``check_finite=True``, the default, and ``Trainer.fit``) with RuntimeError naming the epoch
and the batch, before that batch changes the weights; ``mc.save`` refuses NaN/Inf weights unless
``allow_nonfinite=True``.

Determinism. On the CPU, the same seeds, data, dtype and thread count give bitwise-identical
weights (both paths, the Trainer and Dropout included). What can change the bits: the thread
count (OpenBLAS splits a GEMM's sums differently; 1 vs 2 threads differ by ~1e-7 relative in
float32), the BLAS kernel (another CPU, or OPENBLAS_CORETYPE), the OpenBLAS / mlpcore version,
float32 vs float64, and for one row the batch it is computed in (a one-row batch goes through
GEMV rather than GEMM: predict(X, batch_size) may differ in the last bit between batch sizes)
unless ``mc.set_batch_invariant(True)``, which makes every inference row bitwise independent of
its batch, the batch size and the thread count. Seeded initialisation, shuffling and dropout
masks use mlpcore's own portable RNG: the same numbers on every platform; ``mc.manual_seed(n)``
seeds the layers and fits that are given no seed.

Thread count. ``mc.set_num_threads(n)`` pins n OpenBLAS threads for every GEMM; by default (or
after ``set_num_threads(None)``) a GEMM too small to gain from a split (under 2**30 multiply-adds)
runs on one thread and a larger one on OpenBLAS's default count, so a busy machine never makes
small models crawl. ``OPENBLAS_NUM_THREADS`` pins as set_num_threads does.

Ctrl-C inside a compiled epoch raises KeyboardInterrupt after the training step in progress: the
weights and optimizer state are those of a whole number of steps.

Threads. Long C++ calls release the GIL. A compiled network serialises its calls with a mutex,
so predict / evaluate / train_epoch from several Python threads are safe, each giving its
serial result; predicting while training is safe (a compiled prediction sees the weights at a
step boundary, a module-by-module forward may see them mid-update). Do not step one optimizer
from two threads at once.
"""

# The OpenBLAS wheel's library must be loaded before the extension that links it. The installed
# extension carries an RPATH to it ($ORIGIN/../scipy_openblas32/lib); loading it here by path as
# well covers other layouts (in-tree development builds, unusual site-packages arrangements).
import ctypes as _ctypes
import os as _os

import scipy_openblas32 as _scipy_openblas32

_ctypes.CDLL(_os.path.join(_scipy_openblas32.get_lib_dir(), _scipy_openblas32.get_library(True)), _ctypes.RTLD_GLOBAL)

from . import _core as _core  # the private core, mlpcore._core (loaded after OpenBLAS above)
from ._core import (
    blas_info,
    cuda_available,
    get_batch_invariant,
    get_check_finite,
    get_num_threads,
    set_batch_invariant,
    set_check_finite,
    set_num_threads,
)
from ._validate import manual_seed
from ._version import __version__
from .check import gradcheck
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, PoissonNLLLoss, SmoothL1Loss
from .nn import (
    BatchNorm1d,
    ELU,
    GELU,
    Dropout,
    Identity,
    LayerNorm,
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
    no_grad,
)
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm_
from . import callbacks
from .callbacks import History
from .trainer import Trainer
from . import datasets
from . import distributed
from .io import (
    export_onnx,
    from_torch,
    load,
    load_bytes,
    load_checkpoint,
    load_state_into,
    save,
    save_bytes,
    to_torch,
)

__all__ = [
    "BatchNorm1d", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "ELU", "GELU", "HuberLoss", "Identity",
    "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "Maxout", "MSELoss", "Module", "PoissonNLLLoss", "SmoothL1Loss",
    "Optimizer", "Parameter", "ReLU", "Residual", "RMSprop", "SGD", "Adam", "AdamW",
    "Sequential", "Sigmoid", "SiLU", "Softmax", "Tanh", "TiedLinear", "blas_info", "clip_grad_norm_", "cuda_available",
    "get_batch_invariant", "get_check_finite", "get_num_threads", "gradcheck", "manual_seed", "no_grad",
    "set_batch_invariant", "set_check_finite", "set_num_threads", "__version__",
    "Trainer", "History", "callbacks",
    "datasets", "distributed", "export_onnx", "from_torch", "load", "load_bytes", "load_checkpoint",
    "load_state_into", "save", "save_bytes", "to_torch",
]
