"""LightningDataModules for classification, one per dataset family, and their building blocks.

Every DataModule derives from :class:`ClassificationDataModule`: ``batch_size`` is per device,
``num_classes`` is known at construction (for LightningCLI's ``link_arguments``), and training
order and augmentation are a pure function of (seed, epoch, index) for exact resume and DDP.
"""

from recal.data.base import ClassificationDataModule
from recal.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from recal.data.content_images import ContentImagesDataModule
from recal.data.dtd import DTDDataModule
from recal.data.embedded import DigitsDataModule
from recal.data.imagenet import ImageFolderDataModule, ImageNetDataModule, StylizedImageNetDataModule
from recal.data.images import IMAGE_EXTENSIONS, RobustImageFolder, load_rgb
from recal.data.office_home import DomainBalancedSampler, OfficeHomeDataModule
from recal.data.places365 import Places365DataModule
from recal.data.resumable import ResumableDataLoader
from recal.data.sampling import EpochSeededSampler, SeededTransformDataset
from recal.data.svhn import SVHNDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "ClassificationDataModule",
    "ContentImagesDataModule",
    "DTDDataModule",
    "DigitsDataModule",
    "DomainBalancedSampler",
    "EpochSeededSampler",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataModule",
    "ImageNetDataModule",
    "OfficeHomeDataModule",
    "Places365DataModule",
    "ResumableDataLoader",
    "RobustImageFolder",
    "SVHNDataModule",
    "SeededTransformDataset",
    "StylizedImageNetDataModule",
    "load_rgb",
]
