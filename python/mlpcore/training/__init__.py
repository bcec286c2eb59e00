"""Training: the Keras-shaped ``Trainer`` and what it is made of.

- ``trainer``: ``Trainer`` (fit / evaluate / predict / train_on_batch) and its epoch runner, which
  the scikit-learn estimators drive too;
- ``callbacks``: History, EarlyStopping, ModelCheckpoint, LR schedules, loggers (also importable
  as ``mlpcore.callbacks``);
- ``progress``: what fit prints (``verbose=``: tqdm bars, or one line per epoch);
- ``metrics``: accuracy, probabilities, regression metrics (the one place that computes them);
- ``data``: the one input-preparation path (Trainer, scikit-learn estimators, command line).

Nothing here imports the package root (``mlpcore``): the dependencies point down, to ``nn``,
``losses``, ``optim``, ``io`` and ``_core``.
"""

from . import callbacks, data, metrics, progress
from .callbacks import Callback, History
from .trainer import EpochResult, Trainer, epoch_seed

__all__ = ["Callback", "EpochResult", "History", "Trainer", "callbacks", "data", "epoch_seed", "metrics", "progress"]
