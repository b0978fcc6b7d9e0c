"""Trainer callbacks recal adds to every run (cli.py wires them)."""

from recal.callbacks.checkpoint import BestCheckpoint, LastCheckpoint
from recal.callbacks.config_file import RunConfigFile
from recal.callbacks.interrupt import InterruptCheckpoint, received_signal
from recal.callbacks.lr_monitor import LearningRateLog
from recal.callbacks.predictions import PredictionsCSV
from recal.callbacks.skipped_images import SkippedImagesReport

__all__ = ["BestCheckpoint", "InterruptCheckpoint", "LastCheckpoint", "LearningRateLog", "PredictionsCSV",
           "RunConfigFile", "SkippedImagesReport", "received_signal"]
