"""The two checkpoints every run keeps: ``best.ckpt`` (judged at each validation) and ``last.ckpt``.

Lightning 2.6's ``ModelCheckpoint(monitor=..., save_last=True)`` rewrites ``last.ckpt`` only at a
validation where a new best was saved, and at the end of training only if it was never written:
whenever the metric stops improving, its "last" is the best epoch, and a resume from it silently
loses epochs. So ``best.ckpt`` stays Lightning's ``ModelCheckpoint`` (without ``save_last``), and
``last.ckpt`` is written by :class:`LastCheckpoint` at the end of every training epoch and when
training ends (max_epochs, max_steps, max_time); an interruption writes it too
(:mod:`recal.callbacks.interrupt`). Neither writes anything under ``fast_dev_run``, where
Lightning would otherwise drop ``checkpoints/last.ckpt`` into the working folder.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt``: the state at the validation with the best ``monitor`` (``mode`` max or min).

    Lightning's ``ModelCheckpoint`` options, less ``save_last`` (``last.ckpt`` is
    :class:`LastCheckpoint`'s); ``save_top_k`` > 1 keeps that many, named by ``filename``.
    """

    def __init__(
        self,
        dirpath: Optional[str] = None,
        filename: str = "best",
        monitor: Optional[str] = "val/acc1",
        mode: Literal["max", "min"] = "max",
        save_top_k: int = 1,
        save_weights_only: bool = False,
        every_n_train_steps: Optional[int] = None,
        train_time_interval: Optional[timedelta] = None,
        every_n_epochs: Optional[int] = None,
        save_on_train_epoch_end: Optional[bool] = None,
        auto_insert_metric_name: bool = True,
        verbose: bool = False,
    ) -> None:
        # the version counter would turn a rewritten best.ckpt into best-v1.ckpt after a resume
        super().__init__(dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_top_k=save_top_k,
                         save_weights_only=save_weights_only, every_n_train_steps=every_n_train_steps,
                         train_time_interval=train_time_interval, every_n_epochs=every_n_epochs,
                         save_on_train_epoch_end=save_on_train_epoch_end,
                         auto_insert_metric_name=auto_insert_metric_name, verbose=verbose, save_last=False,
                         enable_version_counter=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        super().on_train_end(trainer, pl_module)


class LastCheckpoint(L.Callback):
    """``last.ckpt``: the state at the end of every training epoch and at the end of training.

    ``saved_step`` is the ``global_step`` of the last write (None before the first), so a
    non-finite loss can name the last checkpoint whose weights are finite.
    """

    def __init__(self, dirpath: Optional[str] = None, filename: str = "last") -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.saved_step: Optional[int] = None

    @property
    def path(self) -> Path:
        return Path(self.dirpath or ".") / f"{self.filename}.ckpt"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # max_steps / max_time stop mid-epoch: the epoch-end write did not see this state
        if self.saved_step != trainer.global_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` (atomically: Lightning writes through a temporary file)."""
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        if not finite_weights(trainer.lightning_module):
            rank_zero_warn(f"not writing {self.path} at step {trainer.global_step}: the weights are not finite")
            return
        trainer.save_checkpoint(self.path)
        self.saved_step = trainer.global_step


def finite_weights(module: torch.nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values()
               if isinstance(t, torch.Tensor) and t.is_floating_point())
