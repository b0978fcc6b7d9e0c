"""Test-only callbacks, loaded by class path in ``cli.py`` runs (``--trainer.callbacks+=...``)."""

from __future__ import annotations

import lightning as L
import torch


class StepMarker(L.Callback):
    """Print ``STEP <global_step>`` after every training batch (a kill test waits for it)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        print(f"STEP {trainer.global_step}", flush=True)


class InjectNaN(L.Callback):
    """Turn the inputs of the training batch at global step ``at_step`` into NaN (on ``rank`` only, if given)."""

    def __init__(self, at_step: int = 3, rank: int | None = None) -> None:
        self.at_step = at_step
        self.rank = rank

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.at_step and self.rank in (None, trainer.global_rank):
            batch[0].fill_(float("nan"))


class SlowSteps(L.Callback):
    """Sleep a little after each batch, so a signal lands mid-epoch on a fast machine too."""

    def on_train_batch_end(self, *args) -> None:
        import time

        time.sleep(0.2)
        torch.manual_seed(0)  # also proves that the global RNG plays no part in training


class FinalWeights(L.Callback):
    """Save the module's state dict at the end of training to ``path`` (what last.ckpt must hold)."""

    def __init__(self, path: str = "final_weights.pt") -> None:
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save({k: v.detach().clone() for k, v in pl_module.state_dict().items()}, self.path)
