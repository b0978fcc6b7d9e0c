"""ModelCheckpoint for recal runs: Lightning's, minus one stray write.

Lightning 2.6's ``ModelCheckpoint.on_train_end`` saves ``last.ckpt`` even under
``fast_dev_run`` — where it announces that "checkpointing is suppressed" and has
no logger, so the file lands in ``<working folder>/checkpoints/`` (a 200–400 MB
ResNet checkpoint per smoke test). Everything else is Lightning's.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that writes nothing during ``fast_dev_run``."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        super().on_train_end(trainer, pl_module)
