"""Saving and loading: checkpoints (``checkpoint``), PyTorch interop (``torch``), ONNX export
(``onnx``) and atomic file writes (``atomic``). Everything is importable from here:
``mlpcore.io.save / load / save_bytes / load_bytes / load_checkpoint / load_checkpoint_bytes /
load_state_into / from_torch / to_torch / export_onnx / to_onnx / atomic_write``."""

from .atomic import atomic_write
from .checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    _read_metadata,  # noqa: F401 (the Trainer's resume reads the header first)
    _version,  # noqa: F401 (the command line's --version)
    load,
    load_bytes,
    load_checkpoint,
    load_checkpoint_bytes,
    load_state_into,
    save,
    save_bytes,
)
from .onnx import export_onnx, to_onnx
from .torch import from_torch, to_torch

__all__ = [
    "FORMAT", "FORMAT_VERSION", "atomic_write", "export_onnx", "from_torch", "load", "load_bytes",
    "load_checkpoint", "load_checkpoint_bytes", "load_state_into", "save", "save_bytes", "to_onnx",
    "to_torch",
]
