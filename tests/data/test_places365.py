"""Places365DataModule on a tiny Places365 in torchvision's real layout (category file, file lists, image folders)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from unittest import mock

import pytest
import torch

from recal.data.names import class_names, item_name
from recal.data.places365 import Places365DataModule
from recal.errors import DatasetNotFoundError, InvalidOptionError
from tests.fixtures import write_places365

SMALL_SIZE, LARGE_SIZE = (32, 32), (48, 40)  # (H, W) of the fixture's two variants


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> Path:
    return write_places365(tmp_path_factory.mktemp("places365"), small_size=SMALL_SIZE, large_size=LARGE_SIZE)


@pytest.fixture
def copy(places, tmp_path) -> Path:
    """A copy of the fixture that a test may break."""
    return Path(shutil.copytree(places, tmp_path / "places365"))


def tiny(root, **kwargs) -> Places365DataModule:
    options = dict(verify_md5=False, batch_size=2, num_workers=0, image_size=16, resize_size=20)
    return Places365DataModule(root, **{**options, **kwargs})


def _listed(root: Path, list_name: str, folder: str) -> list[tuple[str, int]]:
    """The (path, label) pairs a file list names, resolved under ``folder`` as torchvision does."""
    pairs = []
    for line in (root / list_name).read_text().splitlines():
        name, label = line.split()
        pairs.append((str(root / folder / name.lstrip("/")), int(label)))
    return pairs


@pytest.mark.parametrize("split, list_name", [("train-standard", "places365_train_standard.txt"),
                                              ("train-challenge", "places365_train_challenge.txt")])
@pytest.mark.parametrize("small, size", [(True, "256"), (False, "large")])
def test_split_and_small_read_torchvisions_lists_and_folders(places, split, list_name, small, size):
    dm = tiny(places, split=split, small=small)
    dm.setup()
    train, val = dm.train_set.dataset, dm.val_sets["val"].dataset
    variant = split.removeprefix("train-")
    assert train.samples == _listed(places, list_name, f"data_{size}_{variant}")
    assert val.samples == _listed(places, "places365_val.txt", f"val_{size}")
    assert dm.test_set.dataset is val  # the official test labels are not public
    image, label = train[0]
    assert image.size[::-1] == (SMALL_SIZE if small else LARGE_SIZE) and label == train.samples[0][1]


def test_batches_have_the_configured_shape_and_365_classes(places):
    dm = tiny(places)
    assert dm.num_classes == 365  # known before setup: LightningCLI links it to the model
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (2, 3, 16, 16) and y.tolist() == [0, 1]  # the val list interleaves the classes


def test_class_names_follow_the_category_file_and_items_name_their_files(places):
    dm = tiny(places)
    dm.setup("validate")
    names = class_names(dm.val_sets["val"])
    assert len(names) == 365 and names[:3] == ["/a/airfield", "/a/airplane_cabin", "/a/airport_terminal"]
    assert item_name(dm.val_sets["val"], 0) == str(places / "val_256" / "Places365_val_00000001.jpg")


def test_num_classes_is_checked_against_the_category_file(places):
    with pytest.raises(InvalidOptionError, match="data.num_classes=10 but .*categories_places365.txt lists 365 "
                                                 "categories; set data.num_classes: 365"):
        tiny(places, num_classes=10).setup("fit")


def test_split_outside_the_two_training_lists_is_an_error(places):
    with pytest.raises(InvalidOptionError, match=r"data.split='val'; expected 'train-standard' or 'train-challenge'"):
        tiny(places, split="val")


def _one_line_error(dm: Places365DataModule, *named: Path) -> str:
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(named[0]))) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "\n" not in message and "Expected torchvision's layout" in message
    assert all(str(path) in message for path in named)
    return message


def test_missing_root_names_it_and_the_layout(tmp_path):
    _one_line_error(tiny(tmp_path / "nowhere"), tmp_path / "nowhere", tmp_path / "nowhere" / "val_256")


@pytest.mark.parametrize("removed, split, small", [
    ("categories_places365.txt", "train-standard", True),
    ("places365_train_challenge.txt", "train-challenge", True),
    ("places365_val.txt", "train-standard", False),
])
def test_a_missing_file_list_is_named(copy, removed, split, small):
    (copy / removed).unlink()
    message = _one_line_error(tiny(copy, split=split, small=small), copy / removed)
    assert f"{copy / removed} is missing" in message


@pytest.mark.parametrize("removed, split, small", [
    ("data_large_challenge", "train-challenge", False),
    ("val_256", "train-standard", True),
])
def test_a_missing_image_folder_is_named(copy, removed, split, small):
    shutil.rmtree(copy / removed)
    assert f"{copy / removed}/ is missing" in _one_line_error(tiny(copy, split=split, small=small), copy / removed)


def test_an_archive_folder_not_renamed_as_torchvision_does_gets_a_hint(copy):
    (copy / "data_256_standard").rename(copy / "data_256")
    message = _one_line_error(tiny(copy), copy / "data_256_standard")
    assert f"{copy / 'data_256'}/ exists: rename it to data_256_standard/" in message


def test_unofficial_lists_fail_the_md5_check_unless_it_is_off(places):
    message = _one_line_error(tiny(places, verify_md5=True), places / "places365_train_standard.txt")
    assert "fails its MD5 check" in message and "data.verify_md5: false" in message


def test_a_listed_image_that_is_missing_is_named_when_read(copy):
    missing = copy / "data_256_standard" / "a" / "airfield" / "00000001.jpg"
    missing.unlink()
    dm = tiny(copy)
    dm.setup("fit")
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(missing))):
        dm.train_set.dataset[0]


def test_download_fetches_the_training_split_and_val_only_when_something_is_missing(places, tmp_path):
    with mock.patch("recal.data.places365.Places365") as places365:
        tiny(places, download=True).prepare_data()  # complete: nothing to fetch
        assert not places365.called
        tiny(tmp_path / "empty", split="train-challenge", small=False, download=True).prepare_data()
    assert [c.kwargs for c in places365.call_args_list] == [
        dict(split="train-challenge", small=False, download=True), dict(split="val", small=False, download=True)]
    assert {c.args for c in places365.call_args_list} == {(str(tmp_path / "empty"),)}
