"""``mlpcore.callbacks``: the callbacks of ``Trainer.fit``; they live in ``mlpcore.training.callbacks``."""

from .training.callbacks import *  # noqa: F403 - this module is that one's public name
from .training.callbacks import __all__  # noqa: F401
