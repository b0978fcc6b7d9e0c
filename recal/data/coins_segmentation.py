"""The embedded segmentation demo: scikit-image's coins photo, background / coin per pixel, no download ever.

One real 303×384 photograph (:func:`recal.data.coins.coin_regions`, 24 coins labelled by
scikit-image's watershed). Training sees ``train_copies`` augmented versions of it per epoch —
the VOC pipeline's random rescale around ``base_size`` (the photo's shorter side by default),
flip and ``crop_size`` crop, each drawn from (seed, epoch, index) — and validation the photo
itself at full size. It is an overfitting demo, not a benchmark: train and validation are the
same photo, so its mIoU shows that the whole path learns, nothing about generalisation.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from recal.data.coins import coin_regions
from recal.data.segmentation import SegmentationDataModule
from recal.errors import InvalidOptionError

__all__ = ["COIN_CLASSES", "CoinsSegmentationDataModule", "CoinsPhoto"]

COIN_CLASSES = ("background", "coin")


class CoinsPhoto(Dataset):
    """The coins photo ``copies`` times: ``(uint8 (3, H, W) image, uint8 Mask)`` items."""

    def __init__(self, copies: int = 1) -> None:
        regions = coin_regions()
        self.image = torch.from_numpy(regions.image.copy()).permute(2, 0, 1).contiguous()
        self.mask = tv_tensors.Mask(torch.from_numpy(regions.semantic.astype("uint8")))
        self.copies = copies

    def __len__(self) -> int:
        return self.copies

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        if not 0 <= index < self.copies:
            raise IndexError(index)
        return tv_tensors.Image(self.image), self.mask


class CoinsSegmentationDataModule(SegmentationDataModule):
    """Two classes (background, coin); ``train_copies`` augmented crops per epoch, validation on the photo."""

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        base_size: int = 303,
        crop_size: int = 160,
        train_copies: int = 64,
    ) -> None:
        super().__init__(num_classes=len(COIN_CLASSES), batch_size=batch_size, base_size=base_size,
                         crop_size=crop_size, num_workers=num_workers, seed=seed)
        if isinstance(train_copies, bool) or not isinstance(train_copies, int) or train_copies < 1:
            raise InvalidOptionError(f"data.train_copies={train_copies!r}: expected a positive number of crops "
                                     "per epoch")
        self.train_copies = train_copies

    def build_split(self, split: str) -> Dataset:
        return CoinsPhoto(self.train_copies if split == "train" else 1)
