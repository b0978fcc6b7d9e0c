"""LightningModules: the training logic of each recal experiment, nothing about data."""

from recal.tasks.classification import ClassificationTask
from recal.tasks.multi_domain import MultiDomainTask
from recal.tasks.style_transfer import StyleTransferTask
from recal.tasks.texture import TextureTask

__all__ = ["ClassificationTask", "MultiDomainTask", "StyleTransferTask", "TextureTask"]
