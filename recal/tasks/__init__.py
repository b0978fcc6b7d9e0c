"""LightningModules: the training logic of each recal experiment, nothing about data."""

from recal.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
