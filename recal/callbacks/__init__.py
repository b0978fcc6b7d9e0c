"""Trainer callbacks recal adds to every run (cli.py wires them)."""

from recal.callbacks.checkpoint import RunCheckpoint
from recal.callbacks.interrupt import InterruptCheckpoint
from recal.callbacks.skipped_images import SkippedImagesReport

__all__ = ["InterruptCheckpoint", "RunCheckpoint", "SkippedImagesReport"]
