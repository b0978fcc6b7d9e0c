"""DTDDataModule on a tiny DTD in torchvision's real layout (images/ + labels/{train,val,test}N.txt)."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import torch

from recal.data.dtd import DTDDataModule, kfold_indices, read_dtd_images
from recal.errors import DatasetNotFoundError, InvalidOptionError
from tests.fixtures import write_dtd


@pytest.fixture(scope="module")
def dtd(tmp_path_factory):
    return write_dtd(tmp_path_factory.mktemp("dtd"), classes=3, per_class=6, size=(40, 48))


def small(root, **kwargs) -> DTDDataModule:
    options = dict(num_classes=3, batch_size=2, num_workers=0, image_size=16, resize_size=20)
    return DTDDataModule(root, **{**options, **kwargs})


def _names(dataset) -> list[str]:
    return [path.name for path, _ in dataset.dataset.samples]


def test_partition_n_reads_trainN_valN_testN(dtd):
    dm = small(dtd, partition=3)
    dm.setup()
    labels = dtd / "dtd" / "dtd" / "labels"
    for split, dataset in (("train", dm.train_set), ("val", dm.val_sets["val"]), ("test", dm.test_set)):
        listed = [line.split("/")[1] for line in (labels / f"{split}3.txt").read_text().split()]
        assert _names(dataset) == listed
    assert dm.describe() == "partition 3"
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 16, 16) and y.dtype == torch.int64
    # class indices follow the sorted class folders
    assert {dm.train_set.dataset.samples[i][0].parent.name: dm.train_set.dataset.samples[i][1]
            for i in range(len(dm.train_set))} == {"banded": 0, "blotchy": 1, "braided": 2}


def test_partitions_differ(dtd):
    one, two = small(dtd, partition=1), small(dtd, partition=2)
    one.setup("fit"), two.setup("fit")
    assert _names(one.train_set) != _names(two.train_set)


@pytest.mark.parametrize("partition", [0, 11, -1])
def test_partition_outside_1_to_10_names_the_value(dtd, partition):
    with pytest.raises(InvalidOptionError, match=rf"data.partition={partition}; DTD's official partitions are 1..10"):
        small(dtd, partition=partition)


def test_kfold_folds_are_disjoint_stratified_and_cover_every_image_once(dtd):
    _, samples = read_dtd_images(dtd)
    seen: Counter = Counter()
    for fold in range(3):
        dm = small(dtd, protocol="kfold", folds=3, fold=fold)
        dm.setup()
        test = {str(p) for p, _ in dm.test_set.dataset.samples}
        train = {str(p) for p, _ in dm.train_set.dataset.samples}
        assert not test & train and len(test | train) == len(samples)
        assert dm.val_sets["val"].dataset is dm.test_set.dataset  # k-fold has no separate validation set
        assert Counter(t for _, t in dm.test_set.dataset.samples) == {0: 2, 1: 2, 2: 2}  # stratified
        seen.update(test)
    assert seen == Counter(str(p) for p, _ in samples)  # every image in exactly one test fold


def test_kfold_is_seeded(dtd):
    targets = [i % 3 for i in range(30)]
    a, b = kfold_indices(targets, 5, 1, seed=0), kfold_indices(targets, 5, 1, seed=0)
    c = kfold_indices(targets, 5, 1, seed=1)
    assert (a[1] == b[1]).all() and not (a[1] == c[1]).all()


@pytest.mark.parametrize("folds, fold", [(5, 5), (5, -1), (3, 7)])
def test_fold_outside_range_names_the_value(dtd, folds, fold):
    with pytest.raises(InvalidOptionError, match=rf"data.fold={fold}; expected 0..{folds - 1} for data.folds={folds}"):
        small(dtd, protocol="kfold", folds=folds, fold=fold)


def test_more_folds_than_images_per_class_is_an_error(dtd):
    with pytest.raises(InvalidOptionError, match="data.folds=7 but a class has only 6 images"):
        small(dtd, protocol="kfold", folds=7).setup("fit")


def test_missing_layout_and_label_file_name_the_path(tmp_path, dtd):
    with pytest.raises(DatasetNotFoundError, match=f"{tmp_path / 'nope' / 'dtd' / 'dtd' / 'images'} does not exist"):
        small(tmp_path / "nope").setup("fit")
    root = tmp_path / "copy"
    shutil.copytree(dtd, root)
    (root / "dtd" / "dtd" / "labels" / "val4.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="val4.txt does not exist"):
        small(root, partition=4).setup()
    (root / "dtd" / "dtd" / "images" / "banded" / "banded_0001.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"train1.txt:\d+ lists banded/banded_0001.jpg"):
        small(root, partition=1).setup("fit")


def test_num_classes_is_checked(dtd):
    with pytest.raises(InvalidOptionError, match="data.num_classes=47 but .* has 3 class folders"):
        DTDDataModule(dtd, num_workers=0).setup("fit")


def test_eval_crop_size_keeps_a_larger_image_for_multi_crop(dtd):
    dm = small(dtd, eval_crop_size=20)
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape[-2:] == (20, 20)
