"""SVHNDataModule on fixtures written as torchvision's .mat files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recal.data.svhn import SVHNDataModule
from recal.errors import DatasetNotFoundError
from tests.fixtures import class_colour, skip_md5, write_svhn


def test_svhn_loaders_and_label_10_is_digit_0(tmp_path):
    root = write_svhn(tmp_path, n_train=40, n_test=20)
    dm = SVHNDataModule(root, verify_md5=False, batch_size=8, num_workers=0)
    assert dm.num_classes == 10
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert sum([y.tolist() for _, y in dm.val_dataloader()], []) == [i % 10 for i in range(20)]
    image, target = dm.build_split("train")[10]
    assert target == 0
    assert np.abs(np.asarray(image).reshape(-1, 3).mean(0) - class_colour(0, 10)).max() < 8
    assert torch.equal(dm.train_set[(0, 3)][0], dm.val_sets["val"].transform(dm.build_split("train")[3][0]))


def test_extra_split_and_augmentation_are_options(tmp_path):
    root = write_svhn(tmp_path, n_train=40, n_test=20, n_extra=30)
    dm = SVHNDataModule(root, verify_md5=False, include_extra=True, augment=True, batch_size=10, num_workers=0)
    assert len(dm.train_dataloader()) == 7
    assert "RandomCrop" in [type(t).__name__ for t in dm.train_transform().transforms]


def test_md5_and_missing_files(tmp_path):
    root = write_svhn(tmp_path, n_train=10, n_test=10)
    with pytest.raises(DatasetNotFoundError, match=r"train_32x32.mat fails its MD5 check.*verify_md5: false"):
        SVHNDataModule(root).setup("fit")
    with skip_md5():
        SVHNDataModule(root).setup("fit")
    with pytest.raises(DatasetNotFoundError, match=rf"{root}/extra_32x32.mat is missing.*Expected {root}/"
                                                   r"\{train_32x32.mat, test_32x32.mat, extra_32x32.mat\}"):
        SVHNDataModule(root, verify_md5=False, include_extra=True).setup("fit")
