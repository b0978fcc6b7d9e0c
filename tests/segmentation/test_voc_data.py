"""VOC-layout and coins data: masks read as indices, image and mask transformed together, seeded, full-size eval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from recal.data.coins import coin_regions
from recal.data.coins_segmentation import CoinsSegmentationDataModule
from recal.data.segmentation import SeededSegmentationDataset, segmentation_train
from recal.data.voc import VOC_CLASSES, VOCSegmentationDataModule
from tests.segmentation.voc_fixture import SIZE, object_mask, write_voc

pytestmark = pytest.mark.usefixtures("one_thread")


class Stripes(Dataset):
    """One image whose grey level encodes its mask: four vertical stripes of classes 0..3, grey 60 × class."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        classes = torch.arange(64).mul(4).div(64, rounding_mode="floor").to(torch.uint8).expand(48, 64)
        return tv_tensors.Image((classes * 60).expand(3, -1, -1).clone()), tv_tensors.Mask(classes.clone())


def test_crops_flips_and_rescales_move_the_mask_with_its_image() -> None:
    dataset = SeededSegmentationDataset(Stripes(), segmentation_train(48, 40, mean=(0, 0, 0), std=(1, 1, 1)), seed=3)
    for epoch in range(8):
        image, mask = dataset[(epoch, 0)]
        assert image.shape == (3, 40, 40) and mask.shape == (40, 40) and mask.dtype == torch.int64
        labelled = mask != 255
        # the image's grey level says which stripe each pixel came from; only bilinear edges disagree
        from_image = (image[0] * 255 / 60).round().long()
        agreement = (from_image[labelled] == mask[labelled]).float().mean()
        assert agreement > 0.9, (epoch, agreement)
        assert (image[:, ~labelled] == 0).all()  # padding: image 0, mask 255


def test_augmentation_is_a_function_of_seed_epoch_and_index() -> None:
    dataset = SeededSegmentationDataset(Stripes(), segmentation_train(48, 40), seed=0)
    first, again, later = dataset[(0, 0)], dataset[(0, 0)], dataset[(1, 0)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], later[0])


def test_voc_masks_are_read_as_class_indices_and_evaluated_at_full_size(tmp_path: Path) -> None:
    root = write_voc(tmp_path, train=4, val=2)
    data = VOCSegmentationDataModule(root=str(root), batch_size=2, num_workers=0, base_size=40, crop_size=32)
    assert data.num_classes == len(VOC_CLASSES) == 21
    data.setup("fit")
    images, masks = next(iter(data.train_dataloader()))
    assert images.shape == (2, 3, 32, 32) and masks.shape == (2, 32, 32)
    batches = list(data.val_dataloader())
    assert len(batches) == 2  # one image per batch
    image, mask = batches[1]
    assert image.shape == (1, 3, *SIZE)
    assert torch.equal(mask[0], torch.from_numpy(object_mask(5)).long())  # the 6th image: class 6, 255 boundary
    assert set(mask.unique().tolist()) == {0, 6, 255}


def test_the_coins_demo_trains_on_crops_and_validates_on_the_photo() -> None:
    data = CoinsSegmentationDataModule(batch_size=2, crop_size=64, train_copies=4)
    assert data.num_classes == 2
    data.setup("fit")
    images, masks = next(iter(data.train_dataloader()))
    assert images.shape == (2, 3, 64, 64) and set(masks.unique().tolist()) <= {0, 1, 255}
    (image, mask), = list(data.val_dataloader())
    assert image.shape == (1, 3, 303, 384)
    assert torch.equal(mask[0], torch.from_numpy(coin_regions().semantic))
    assert 0.2 < float(np.mean(coin_regions().semantic)) < 0.4  # coins cover about 30 % of the photo
