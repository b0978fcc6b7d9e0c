"""PASCAL VOC 2012 semantic segmentation, in the VOCdevkit layout (torchvision's ``VOCSegmentation``).

On disk: ``<root>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` and
``ImageSets/Segmentation/{train,val}.txt`` (one id a line; 1,464 train and 1,449 val images).
21 classes (background + 20 objects). The masks are palette PNGs (mode "P") whose pixel values
are the class indices, 255 marking object boundaries and difficult regions: read as indices,
never converted to RGB, and 255 is ignored by the loss and the metrics. ``mask_folder`` and the
split names select other masks and lists in the same layout (e.g. the SBD-augmented
``SegmentationClassAug`` with ``train_aug.txt``).

Every listed image is checked when the split is built (file headers only): a missing folder,
a listed file that is absent, a mask that is not an index image or not the image's size each
stop with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from recal.data.images import load_rgb
from recal.data.segmentation import SegmentationDataModule
from recal.errors import CorruptImageError, DatasetNotFoundError

__all__ = ["VOC_CLASSES", "VOCSegmentationDataModule", "VOCSegmentationImages", "read_voc_split", "voc_folder"]

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
LAYOUT = ("<root>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg, <root>/VOCdevkit/VOC2012/{masks}/<id>.png and "
          "<root>/VOCdevkit/VOC2012/ImageSets/Segmentation/<split>.txt")
INDEX_MODES = ("P", "L")  # palette or 8-bit grey: pixel values are class indices


def voc_folder(root: str | Path, mask_folder: str = "SegmentationClass") -> Path:
    """``<root>/VOCdevkit/VOC2012``, or an error naming the missing folder and the expected layout."""
    folder = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", mask_folder, "ImageSets/Segmentation"):
        if not (folder / sub).is_dir():
            raise DatasetNotFoundError(f"VOC: {folder / sub} does not exist; expected the VOCdevkit layout "
                                       + LAYOUT.format(masks=mask_folder).replace("<root>", str(root)))
    return folder


def read_voc_split(root: str | Path, split: str, mask_folder: str = "SegmentationClass") -> list[tuple[Path, Path]]:
    """The ``(image, mask)`` paths of the ids in ``ImageSets/Segmentation/<split>.txt``, each checked to exist."""
    folder = voc_folder(root, mask_folder)
    listing = folder / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise DatasetNotFoundError(f"VOC split list {listing} does not exist")
    pairs = [(folder / "JPEGImages" / f"{name}.jpg", folder / mask_folder / f"{name}.png")
             for name in listing.read_text().split()]
    if not pairs:
        raise DatasetNotFoundError(f"VOC split list {listing} lists no image ids")
    for image, mask in pairs:
        for path in (image, mask):
            if not path.is_file():
                raise DatasetNotFoundError(f"VOC: {path} is listed in {listing} but does not exist")
    return pairs


def check_mask(image: Path, mask: Path) -> None:
    """The mask must be an index image (mode P or L) of the image's width and height (headers only)."""
    with Image.open(image) as picture, Image.open(mask) as labels:
        if labels.mode not in INDEX_MODES:
            raise CorruptImageError(f"VOC mask {mask} has mode {labels.mode}; expected a palette (P) or 8-bit "
                                    "grey (L) PNG whose pixel values are class indices (255: ignore)")
        if labels.size != picture.size:
            raise CorruptImageError(f"VOC mask {mask} is {labels.size[1]}×{labels.size[0]} (H×W) but its image "
                                    f"{image} is {picture.size[1]}×{picture.size[0]}; expected the image's size")


class VOCSegmentationImages(Dataset):
    """``(RGB PIL image, uint8 Mask of class indices)`` items of a list of ``(image, mask)`` paths."""

    def __init__(self, pairs: list[tuple[Path, Path]]) -> None:
        for image, mask in pairs:
            check_mask(image, mask)
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Image.Image, tv_tensors.Mask]:
        image, mask = self.pairs[index]
        with Image.open(mask) as labels:
            indices = np.array(labels)  # palette indices, not colours
        return load_rgb(image), tv_tensors.Mask(torch.from_numpy(indices))


class VOCSegmentationDataModule(SegmentationDataModule):
    """VOC 2012 segmentation: train on ``train_split``, validate (and test) on ``val_split``.

    Defaults are torchvision's reference: training crops of 480 from images rescaled around
    ``base_size`` 520; validation at full size (VOC's own protocol; the reference resizes the
    shorter side to 520 first). 21 classes; ``batch_size`` per device.
    """

    def __init__(
        self,
        root: str = "data/voc",
        batch_size: int = 4,
        num_workers: int = 4,
        seed: int = 0,
        base_size: int = 520,
        crop_size: int = 480,
        train_split: str = "train",
        val_split: str = "val",
        mask_folder: str = "SegmentationClass",
    ) -> None:
        super().__init__(num_classes=len(VOC_CLASSES), batch_size=batch_size, base_size=base_size,
                         crop_size=crop_size, num_workers=num_workers, seed=seed)
        self.root = root
        self.splits = {"train": train_split, "val": val_split, "test": val_split}
        self.mask_folder = mask_folder

    def build_split(self, split: str) -> Dataset:
        return VOCSegmentationImages(read_voc_split(self.root, self.splits[split], self.mask_folder))
