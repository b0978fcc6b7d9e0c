"""A resumable checkpoint when a run is stopped: SIGTERM, Ctrl-C, or an exception.

Lightning turns SIGTERM into a stop at the end of the current training batch
(``SIGTERMException``) and calls every callback's ``on_exception``; this one
saves the state there. (It is not an ``OnExceptionCheckpoint``: with one of
those, Lightning silently resumes every later ``fit`` from the newest such file,
and a new run must start fresh unless ``--ckpt_path`` says otherwise.) We
give Ctrl-C (SIGINT) the same graceful path — the first Ctrl-C finishes the
batch, saves and exits; a second one aborts at once — because a
KeyboardInterrupt raised in the middle of an optimiser step would save weights
that no uninterrupted run ever had. The checkpoint goes to the run's
``checkpoints/interrupted.ckpt``, next to ``best.ckpt`` and ``last.ckpt``, which
it never touches; ``--ckpt_path`` on it continues the run exactly (the train
loader resumes mid-epoch, see :mod:`recal.data.resumable`).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


class InterruptCheckpoint(L.Callback):
    """Save ``<run>/checkpoints/interrupted.ckpt`` on any exception; stop gracefully on Ctrl-C."""

    def __init__(self, filename: str = "interrupted") -> None:
        self.filename = filename
        self.dirpath = "."  # the run folder is known only at setup
        self._previous_sigint: Any = None
        self._ready = False  # a run that fails before setup has nothing worth resuming

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + ".ckpt")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and getattr(checkpoint, "dirpath", None):
            self.dirpath = checkpoint.dirpath
        else:
            self.dirpath = os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")
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
            connector.received_sigterm = True
        return handler

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not self._ready or trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.ckpt_path)
        rank_zero_info(f"saved {self.ckpt_path} at step {trainer.global_step}; "
                       f"continue with --ckpt_path {self.ckpt_path}")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_sigint()
        if self._ready and stage == "fit":  # a run that finished needs no interrupted.ckpt
            trainer.strategy.remove_checkpoint(self.ckpt_path)
