"""The segmentation DataModule base: image and mask transformed together, seeded per sample.

A subclass says how to build its raw splits — items ``(image, mask)``: a PIL image or uint8
(3, H, W) tensor and a uint8 ``tv_tensors.Mask`` of class indices with 255 for "ignore" — and
this base applies one ``transforms.v2`` pipeline to both, so that a crop, flip or rescale moves
the mask with its image (masks are resized nearest, padded with 255). Training follows
torchvision's segmentation reference (``references/segmentation/presets.py``): resize the
shorter side to a random size in [0.5, 2.0] × ``base_size``, flip, crop ``crop_size`` (padding
image 0, mask 255), normalise. Evaluation runs on the full, unresized image, one image per
batch (no padding, so no pixel of one image depends on another's size), as the reference's
evaluation loader (batch size 1). Sample order and augmentation are a pure function of
(seed, epoch, index), as for classification (:mod:`recal.data.sampling`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from recal.data.base import ClassificationDataModule, Transform
from recal.data.sampling import SeededJointTransformDataset
from recal.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from recal.errors import InvalidOptionError

__all__ = ["IGNORE_INDEX", "SeededSegmentationDataset", "SegmentationDataModule", "segmentation_eval",
           "segmentation_train"]

IGNORE_INDEX = 255
SCALE_RANGE = (0.5, 2.0)  # torchvision's reference: shorter side in [0.5, 2.0] × base_size


def _to_tensors(mean: tuple[float, ...], std: tuple[float, ...]) -> list[v2.Transform]:
    # a dtype (not a dict) converts images only: the mask keeps its uint8 class indices
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), v2.ToPureTensor()]


def segmentation_train(base_size: int, crop_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """Random rescale (shorter side), horizontal flip and ``crop_size`` crop of image and mask together."""
    low, high = (int(base_size * s) for s in SCALE_RANGE)
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResize(low, high),
        v2.RandomHorizontalFlip(),
        v2.RandomCrop(crop_size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}),
        *_to_tensors(mean, std),
    ])


def segmentation_eval(mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """The full image, normalised; the mask unchanged."""
    return v2.Compose(_to_tensors(mean, std))


class SeededSegmentationDataset(SeededJointTransformDataset):
    """:class:`~recal.data.sampling.SeededJointTransformDataset` for ``(image, mask)`` items: one transform
    of both, seeded by (seed, epoch, index) when indexed with a pair; returns a float image and an
    int64 (H, W) mask (what ``cross_entropy`` takes)."""

    def apply(self, image: Any, mask: Any) -> tuple[Tensor, Tensor]:
        image, mask = self.transform(image, mask)
        return image, torch.as_tensor(mask).long()


class SegmentationDataModule(ClassificationDataModule):
    """Train / val loaders of ``(image, mask)`` pairs; subclasses provide the splits.

    ``base_size`` and ``crop_size``: the training rescale and crop (see the module docstring).
    The training loader is the classification one (seeded, this rank's share, full batches of
    ``batch_size`` crops); validation and test loaders give one full-size image per batch.
    """

    def __init__(self, num_classes: int, batch_size: int, base_size: int, crop_size: int, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__(num_classes=num_classes, batch_size=batch_size, num_workers=num_workers, seed=seed)
        for option, value in (("base_size", base_size), ("crop_size", crop_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionError(f"data.{option}={value!r}: expected a positive number of pixels")
        self.base_size = base_size
        self.crop_size = crop_size

    def train_transform(self) -> Transform:
        return segmentation_train(self.base_size, self.crop_size)

    def eval_transform(self) -> Transform:
        return segmentation_eval()

    def setup(self, stage: str | None = None) -> None:
        """Build the splits ``stage`` needs (all when ``stage`` is None), once each."""
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = SeededSegmentationDataset(self.build_split("train"), self.train_transform(), self.seed)
        if stage in ("fit", "validate", None) and self.val_sets is None:
            self.val_sets = {"val": SeededSegmentationDataset(self.build_split("val"), self.eval_transform(),
                                                              self.seed)}
        if stage in ("test", "predict", None) and self.test_set is None:
            self.test_set = SeededSegmentationDataset(self.build_split("test"), self.eval_transform(), self.seed)

    def _full_size_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        """The validation images in dataset order, one full-size image per batch."""
        if self.val_sets is None:
            self.setup("validate")
        return self._full_size_loader(self.val_sets["val"])

    def test_dataloader(self) -> DataLoader:
        """The test split in dataset order, one full-size image per batch."""
        if self.test_set is None:
            self.setup("test")
        return self._full_size_loader(self.test_set)

    def build_split(self, split: str) -> Dataset:
        """The raw ``split`` with ``(image, mask)`` items."""
        raise NotImplementedError
