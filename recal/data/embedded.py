"""The embedded classification dataset: scikit-learn's handwritten digits, no download ever.

``load_digits`` ships 1,797 real 8x8 grayscale digits (values 0..16, 10 classes) inside
scikit-learn. They are scaled to uint8, upsampled to 32x32 (bilinear) and repeated to three
channels so that every CIFAR model runs on them unchanged; the whole set is one in-memory tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, Subset, TensorDataset

from recal.data.base import ClassificationDataModule, Transform
from recal.data.transforms import DIGITS_MEAN, DIGITS_STD, cifar_eval, cifar_train
from recal.errors import InvalidOptionError

__all__ = ["DigitsDataModule", "load_digits_rgb32"]


def load_digits_rgb32() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as a uint8 (N, 3, 32, 32) tensor and an int64 (N,) target tensor."""
    digits = load_digits()
    images = torch.from_numpy(digits.images).float().mul(255.0 / 16.0).unsqueeze(1)
    images = torch.nn.functional.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(digits.target).long()


class DigitsDataModule(ClassificationDataModule):
    """scikit-learn digits at 32x32 RGB with a seeded, stratified train/val split.

    ``split_seed`` fixes the split (``train_test_split(stratify=targets)``; 1,437 / 360 for the
    default ``val_fraction=0.2``) independently of ``seed``, which drives sample order and
    augmentation, so a sweep over ``seed`` keeps the split. The val split doubles as the test
    split. Training augmentation is zero-pad 2 + random crop 32, without a horizontal flip.
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        split_seed: int = 0,
        val_fraction: float = 0.2,
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__(num_classes=10, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         interleave_ranks=interleave_ranks)
        if not 0.0 < val_fraction < 1.0:
            raise InvalidOptionError(f"data.val_fraction={val_fraction}; expected a number between 0 and 1")
        self.split_seed = split_seed
        self.val_fraction = val_fraction
        self._splits: dict[str, Dataset] | None = None

    def _load(self) -> dict[str, Dataset]:
        images, targets = load_digits_rgb32()
        train_idx, val_idx = train_test_split(np.arange(len(targets)), test_size=self.val_fraction,
                                              stratify=targets.numpy(), random_state=self.split_seed)
        full = TensorDataset(images, targets)
        val = Subset(full, val_idx.tolist())
        return {"train": Subset(full, train_idx.tolist()), "val": val, "test": val}

    def build_split(self, split: str) -> Dataset:
        if self._splits is None:
            self._splits = self._load()
        return self._splits[split]

    def train_transform(self) -> Transform:
        return cifar_train(size=32, padding=2, flip=False, mean=DIGITS_MEAN, std=DIGITS_STD)

    def eval_transform(self) -> Transform:
        return cifar_eval(mean=DIGITS_MEAN, std=DIGITS_STD)
