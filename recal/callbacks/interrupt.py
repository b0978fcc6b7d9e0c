"""A resumable checkpoint when a run is interrupted: SIGTERM or Ctrl-C (SIGINT), nothing else.

Lightning turns SIGTERM into a stop at the end of the current training batch
(``SIGTERMException``) and calls every callback's ``on_exception``; this one saves the
state there as ``checkpoints/interrupted.ckpt`` and as ``last.ckpt`` (the last state, as its
name says). A config error, a data error or a non-finite loss is not an interruption and
writes neither. (It is not an ``OnExceptionCheckpoint``: with one of those, Lightning
silently resumes every later ``fit`` from the newest such file.) Ctrl-C gets the same
graceful path — the first Ctrl-C finishes the batch, saves and exits with status 130; a
second one aborts at once — because a KeyboardInterrupt raised in the middle of an
optimiser step would save weights that no uninterrupted run ever had. ``--ckpt_path`` on
the file continues the run exactly (the train loader resumes mid-epoch, see
:mod:`recal.data.resumable`).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from typing import Any, Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from recal.callbacks.checkpoint import LastCheckpoint

# The signal that stopped the last run in this process; cli.py turns it into the exit status.
_received: dict[str, Optional[int]] = {"signal": None}


def received_signal() -> Optional[int]:
    """SIGINT or SIGTERM when the last run in this process was stopped by one, else None."""
    return _received["signal"]


class InterruptCheckpoint(L.Callback):
    """Save ``<run>/checkpoints/interrupted.ckpt`` (and ``last.ckpt``) when SIGTERM or Ctrl-C stops a fit."""

    def __init__(self, dirpath: Optional[str] = None, filename: str = "interrupted") -> None:
        self.dirpath = dirpath
        self.filename = filename
        self._previous_sigint: Any = None
        self._ready = False  # a run that stops before setup has nothing worth resuming

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath or ".", self.filename + ".ckpt")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")
        _received["signal"] = None
        self._ready = True
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._graceful_sigint(trainer))

    def _graceful_sigint(self, trainer: L.Trainer):
        def handler(signum: int, frame: Any) -> None:
            connector = trainer._signal_connector  # Lightning's own SIGTERM flag: stop after this batch
            if connector.received_sigterm:
                raise KeyboardInterrupt
            rank_zero_info("\nCtrl-C: finishing this batch, then saving a resumable checkpoint "
                           "(press Ctrl-C again to abort at once)")
            _received["signal"] = signal.SIGINT
            connector.received_sigterm = True
        return handler

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException):
            return
        if _received["signal"] is None:
            _received["signal"] = signal.SIGTERM
        if not self._ready or trainer.state.fn != "fit" or trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.ckpt_path)
        for callback in [c for c in trainer.callbacks if isinstance(c, LastCheckpoint)]:  # the last state: this one
            if trainer.is_global_zero:
                temporary = f"{callback.path}.tmp"
                shutil.copyfile(self.ckpt_path, temporary)
                os.replace(temporary, callback.path)
            callback.saved_step = trainer.global_step
        rank_zero_info(f"saved {self.ckpt_path} at step {trainer.global_step}; "
                       f"continue with --ckpt_path {self.ckpt_path}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a finished fit is no longer interrupted: an older interrupted.ckpt would only mislead
        if self._ready and os.path.isfile(self.ckpt_path):
            trainer.strategy.remove_checkpoint(self.ckpt_path)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_sigint()
