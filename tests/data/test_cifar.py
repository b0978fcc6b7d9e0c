"""CIFAR-10/100 DataModules on fixtures written in torchvision's pickle format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recal.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from recal.errors import DatasetNotFoundError
from tests.fixtures import class_colour, skip_md5, write_cifar10, write_cifar100


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    return write_cifar10(tmp_path_factory.mktemp("c10"), n_train=50, n_test=20)


def test_cifar10_loaders_from_the_fixture(cifar10):
    dm = CIFAR10DataModule(cifar10, verify_md5=False, batch_size=8, num_workers=0)
    assert dm.num_classes == 10
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(dm.train_dataloader()) == 6
    assert [y.tolist() for _, y in dm.val_dataloader()][0] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert len(dm.val_sets["val"]) == len(dm.test_dataloader().dataset) == 20
    assert dm.val_sets["val"].dataset is dm.test_set.dataset  # the test split is loaded once


def test_fixture_pixels_round_trip_through_torchvision(cifar10):
    dm = CIFAR10DataModule(cifar10, verify_md5=False)
    raw = dm.build_split("train")
    assert raw.classes[:2] == ["airplane", "automobile"]
    image, target = raw[13]
    assert target == 3
    mean = np.asarray(image).reshape(-1, 3).mean(0)  # the class colour, R G B in the right planes
    assert np.abs(mean - class_colour(3, 10)).max() < 8


def test_md5_is_checked_unless_disabled_or_patched(cifar10):
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_1 fails its MD5 check.*verify_md5: false"):
        CIFAR10DataModule(cifar10).setup("fit")
    with skip_md5():
        dm = CIFAR10DataModule(cifar10, batch_size=8, num_workers=0)
        dm.setup("fit")
    assert len(dm.train_set) == 50


def test_missing_files_are_named_with_the_layout(tmp_path, cifar10):
    with pytest.raises(DatasetNotFoundError,
                       match=rf"CIFAR-10 root {tmp_path} .*{tmp_path}/cifar-10-batches-py/data_batch_1 is missing.*"
                             r"Expected .*cifar-10-batches-py/\{data_batch_1, .*batches.meta\}"):
        CIFAR10DataModule(tmp_path, verify_md5=False).setup("fit")
    (cifar10 / "cifar-10-batches-py" / "test_batch").rename(cifar10 / "moved")
    try:
        with pytest.raises(DatasetNotFoundError, match="test_batch is missing"):
            CIFAR10DataModule(cifar10, verify_md5=False).setup("validate")
    finally:
        (cifar10 / "moved").rename(cifar10 / "cifar-10-batches-py" / "test_batch")


def test_cifar100_uses_fine_labels(tmp_path):
    root = write_cifar100(tmp_path, n_train=200, n_test=100)
    dm = CIFAR100DataModule(root, verify_md5=False, batch_size=50, num_workers=0)
    assert dm.num_classes == 100
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (50, 3, 32, 32)
    assert sum([y.tolist() for _, y in dm.val_dataloader()], []) == list(range(100))
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python/train"):
        CIFAR100DataModule(tmp_path / "none").setup("fit")
