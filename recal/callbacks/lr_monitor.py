"""Lightning's LearningRateMonitor, with a switch and without a failure when a run has no logger."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor


class LearningRateLog(LearningRateMonitor):
    """Log each parameter group's learning rate (``lr-SGD/decay``, …) to the run's logger.

    ``enabled: false`` (``--lr_monitor.enabled false``) switches it off; a run without a
    logger (``--trainer.logger false``) has nowhere to log and skips it, where Lightning's
    monitor would stop the run with an error.
    """

    def __init__(self, enabled: bool = True, logging_interval: Any = "epoch", log_momentum: bool = False,
                 log_weight_decay: bool = False) -> None:
        super().__init__(logging_interval=logging_interval, log_momentum=log_momentum,
                         log_weight_decay=log_weight_decay)
        self.enabled = enabled
        self._active = False

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._active = self.enabled and bool(trainer.loggers)
        if self._active:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
        if self._active:
            super().on_train_batch_start(*args, **kwargs)

    def on_train_epoch_start(self, *args: Any, **kwargs: Any) -> None:
        if self._active:
            super().on_train_epoch_start(*args, **kwargs)
