"""``mlpcore.trainer``: the import path of the Trainer before ``mlpcore.training`` (kept working)."""

from .training.trainer import EpochResult, History, Trainer, epoch_seed

__all__ = ["EpochResult", "History", "Trainer", "epoch_seed"]
