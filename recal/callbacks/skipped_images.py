"""Report corrupt images that a datamodule skipped (``skip_corrupt: true``) at each epoch end."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn


class SkippedImagesReport(L.Callback):
    """Log ``data/skipped_<split>`` and warn with the count whenever images were skipped."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._report(trainer, pl_module)

    def _report(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = getattr(trainer.datamodule, "skipped_images", lambda: {})()
        for split, count in counts.items():
            pl_module.log(f"data/skipped_{split}", float(count), rank_zero_only=True)
        skipped = {split: count for split, count in counts.items() if count}
        if skipped:
            listed = ", ".join(f"{count} in {split}" for split, count in skipped.items())
            rank_zero_warn(f"skipped corrupt images so far (skip_corrupt: true): {listed}")
