"""ImageFolderDataModule (ImageNet, Stylized-ImageNet) on tiny folders in ImageNet's layout."""

from __future__ import annotations

import shutil

import pytest
import torch

from recal.data.imagenet import ImageFolderDataModule, ImageNetDataModule, StylizedImageNetDataModule
from recal.errors import CorruptImageError, DatasetNotFoundError, InvalidOptionError
from tests.fixtures import write_corrupt_image, write_image_folder, write_truncated_jpeg


def small(root, **kwargs) -> ImageFolderDataModule:
    options = dict(num_classes=3, batch_size=4, num_workers=0, image_size=16, resize_size=20)
    return ImageFolderDataModule(root, **{**options, **kwargs})


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=["n01", "n02", "n03"],
                              per_class={"train": 4, "val": 2}, size=(24, 30))


def test_loaders_have_the_right_shapes_and_targets(imagenet):
    dm = small(imagenet)
    assert dm.num_classes == 3 and dm.hparams["root"] == imagenet
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert len(dm.train_dataloader()) == 3  # 12 images, batches of 4
    val = dm.val_dataloader()
    assert [y.tolist() for _, y in val] == [[0, 0, 1, 1], [2, 2]]
    assert next(iter(dm.test_dataloader()))[0].shape == (4, 3, 16, 16)


def test_train_batches_are_reproducible(imagenet):
    first = [x for x, _ in small(imagenet, seed=3).train_dataloader()]
    again = [x for x, _ in small(imagenet, seed=3).train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_missing_root_and_splits_name_the_path(tmp_path, imagenet):
    with pytest.raises(DatasetNotFoundError, match=f"root {tmp_path / 'x'} does not exist; expected .*train/<class>"):
        small(tmp_path / "x").setup("fit")
    only_val = tmp_path / "only_val"
    shutil.copytree(imagenet / "val", only_val / "val")
    with pytest.raises(DatasetNotFoundError, match=f"root {only_val} has no train/ folder; expected {only_val}/train"):
        small(only_val).setup("fit")
    flat = tmp_path / "flat"
    shutil.copytree(imagenet / "train", flat / "train")
    (flat / "val").mkdir()
    (flat / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match=f"{flat / 'val'} has no class folders"):
        small(flat).setup("fit")


def test_num_classes_is_checked_against_the_folders(imagenet):
    with pytest.raises(InvalidOptionError, match=r"num_classes=1000 but .*train has 3 class folders \(n01, n02, n03\)"):
        ImageNetDataModule(imagenet).setup("fit")


def test_train_and_val_classes_must_match(tmp_path, imagenet):
    root = tmp_path / "mismatch"
    shutil.copytree(imagenet, root)
    shutil.rmtree(root / "val" / "n02")
    with pytest.raises(DatasetNotFoundError, match=f"missing from {root / 'val'}: n02"):
        small(root).setup("validate")
    shutil.copytree(root / "val" / "n03", root / "val" / "n99")
    shutil.copytree(imagenet / "val" / "n02", root / "val" / "n02")
    with pytest.raises(DatasetNotFoundError, match=f"missing from {root / 'train'}: n99"):
        small(root).setup("fit")


def test_empty_class_folder_names_it(tmp_path, imagenet):
    root = tmp_path / "empty"
    shutil.copytree(imagenet, root)
    shutil.rmtree(root / "train" / "n03")
    (root / "train" / "n03").mkdir()
    with pytest.raises(DatasetNotFoundError, match=f"class folder {root / 'train' / 'n03'} holds no image files"):
        small(root).setup("fit")


def test_extra_validation_set_gets_its_own_loader(tmp_path, imagenet):
    stylized = write_image_folder(tmp_path / "sin", classes=["n01", "n02", "n03"], per_class=2, size=(24, 30))
    dm = StylizedImageNetDataModule(stylized, num_classes=3, batch_size=2, num_workers=0, image_size=16,
                                    resize_size=20, extra_val_root=imagenet)
    assert dm.val_names == ["val", "val_in"]
    loaders = dm.val_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    assert [len(loader.dataset) for loader in loaders] == [6, 6]
    assert loaders[1].dataset.dataset.root == str(imagenet / "val")
    with pytest.raises(DatasetNotFoundError, match=f"root {tmp_path / 'gone'} does not exist"):
        StylizedImageNetDataModule(stylized, num_classes=3, extra_val_root=tmp_path / "gone").setup("fit")


def test_corrupt_images_stop_the_run_or_are_skipped_and_counted(tmp_path, imagenet):
    root = tmp_path / "corrupt"
    shutil.copytree(imagenet, root)
    write_truncated_jpeg(root / "train" / "n01" / "n01_0.JPEG", size=(24, 30))
    write_corrupt_image(root / "val" / "n02" / "n02_1.JPEG")
    with pytest.raises(CorruptImageError, match="n01_0.JPEG"):
        list(small(root, seed=0).train_dataloader())
    dm = small(root, skip_corrupt=True)
    with pytest.warns(UserWarning, match="skipping corrupt image"):
        n_train = sum(len(y) for _, y in dm.train_dataloader())
        n_val = sum(len(y) for _, y in dm.val_dataloader())
    assert (n_train, n_val) == (11, 5)
    assert dm.skipped_images() == {"train": 1, "val": 1}


def test_a_missing_extra_val_root_is_named_not_the_main_root(tmp_path, imagenet):
    stylized = write_image_folder(tmp_path / "sin", classes=["n01", "n02", "n03"], per_class=2, size=(24, 30))
    gone = tmp_path / "imagenet_gone"
    with pytest.raises(DatasetNotFoundError) as error:
        StylizedImageNetDataModule(stylized, num_classes=3, extra_val_root=gone).setup("fit")
    message = str(error.value)
    assert message.startswith(f"data.extra_val_root {gone} does not exist; expected {gone}/val/<class>")
    assert "(the val_in validation set)" in message
    assert f"{stylized}/val" not in message and "Stylized-ImageNet root" not in message


def test_an_extra_val_root_without_val_is_named_not_the_main_root(tmp_path, imagenet):
    stylized = write_image_folder(tmp_path / "sin", classes=["n01", "n02", "n03"], per_class=2, size=(24, 30))
    train_only = write_image_folder(tmp_path / "in", classes=["n01", "n02", "n03"], per_class=2, size=(24, 30),
                                    splits=("train",))
    with pytest.raises(DatasetNotFoundError) as error:
        StylizedImageNetDataModule(stylized, num_classes=3, extra_val_root=train_only,
                                   extra_val_name="imagenet_val").setup("fit")
    message = str(error.value)
    assert message.startswith(f"data.extra_val_root {train_only} has no val/ folder; expected {train_only}/val/<class>")
    assert "(the imagenet_val validation set)" in message and f"{stylized}/val" not in message
