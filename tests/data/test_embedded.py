"""DigitsDataModule: the embedded scikit-learn digits at 32x32 RGB, split 80/20 stratified."""

from __future__ import annotations

import pytest
import torch

from recal.data.embedded import DigitsDataModule, load_digits_rgb32
from recal.errors import InvalidOptionError


def split_indices(dm: DigitsDataModule, split: str) -> list[int]:
    return list(dm.build_split(split).indices)


def test_images_are_upsampled_uint8_rgb():
    images, targets = load_digits_rgb32()
    assert images.shape == (1797, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[:, 0], images[:, 2])
    assert images.max() == 255 and images.min() == 0
    assert torch.equal(targets.bincount(), torch.tensor([178, 182, 177, 183, 181, 182, 181, 179, 174, 180]))


def test_split_is_stratified_80_20_and_seeded():
    dm = DigitsDataModule()
    dm.setup()
    assert (len(dm.train_set), len(dm.val_sets["val"]), len(dm.test_set)) == (1437, 360, 360)
    train, val = split_indices(dm, "train"), split_indices(dm, "val")
    assert not set(train) & set(val) and len(set(train) | set(val)) == 1797
    _, targets = load_digits_rgb32()
    per_class_val = targets[val].bincount(minlength=10)
    assert torch.all((per_class_val - targets.bincount() * 0.2).abs() <= 1)  # stratified
    assert split_indices(DigitsDataModule(), "val") == val
    assert split_indices(DigitsDataModule(split_seed=1), "val") != val
    assert split_indices(DigitsDataModule(seed=7), "val") == val  # seed drives order, not the split


def test_loaders_give_normalised_batches():
    dm = DigitsDataModule(batch_size=64)
    assert dm.num_classes == 10
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(dm.train_dataloader()) == 1437 // 64
    xs = torch.cat([x for x, _ in dm.val_dataloader()])
    assert xs.shape == (360, 3, 32, 32)
    assert abs(xs.mean().item()) < 0.1 and abs(xs.std().item() - 1) < 0.1


def test_training_augmentation_shifts_but_never_mirrors():
    dm = DigitsDataModule()
    dm.setup("fit")
    steps = [type(t).__name__ for t in dm.train_transform().transforms]
    assert "RandomCrop" in steps and "RandomHorizontalFlip" not in steps
    a, b = dm.train_set[(0, 5)][0], dm.train_set[(1, 5)][0]
    assert torch.equal(a, dm.train_set[(0, 5)][0]) and a.shape == b.shape == (3, 32, 32)


def test_bad_val_fraction_is_rejected():
    with pytest.raises(InvalidOptionError, match="val_fraction=1.5"):
        DigitsDataModule(val_fraction=1.5)
