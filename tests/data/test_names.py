"""Item names and class names through recal's dataset wrappers (SeededTransformDataset, Subset, ConcatDataset)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch.utils.data import ConcatDataset, Subset

from recal.data import DigitsDataModule, DTDDataModule, OfficeHomeDataModule, RobustImageFolder
from recal.data.names import class_names, item_name, item_path
from recal.data.sampling import SeededTransformDataset
from tests.fixtures import write_dtd, write_image_folder, write_office_home


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> RobustImageFolder:
    root = write_image_folder(tmp_path_factory.mktemp("names"), classes=["cat", "dog"], per_class=3,
                              size=(8, 8), splits=("val",))
    return RobustImageFolder(root / "val")


def test_image_folder_items_are_named_by_their_file(folder: RobustImageFolder) -> None:
    wrapped = SeededTransformDataset(folder, None)
    assert [item_name(wrapped, i) for i in range(len(folder))] == [str(p) for p, _ in folder.samples]
    assert Path(item_name(wrapped, 4)).parent.name == "dog"
    assert class_names(wrapped) == ["cat", "dog"]


def test_subset_maps_its_index_to_the_underlying_file(folder: RobustImageFolder) -> None:
    wrapped = SeededTransformDataset(Subset(folder, [5, 0, 3]), None, seed=1)
    assert [item_path(wrapped, i) for i in range(3)] == [str(folder.samples[j][0]) for j in (5, 0, 3)]
    assert class_names(wrapped) == ["cat", "dog"]


def test_concat_dataset_finds_the_part_holding_the_item(folder: RobustImageFolder) -> None:
    joined = ConcatDataset([Subset(folder, [1]), folder])
    assert item_path(joined, 0) == str(folder.samples[1][0])
    assert item_path(joined, 3) == str(folder.samples[2][0])
    assert class_names(joined) == ["cat", "dog"]


def test_in_memory_digits_are_named_by_split_and_index() -> None:
    dm = DigitsDataModule(val_fraction=0.05)
    dm.setup("test")
    assert item_path(dm.test_set, 17) is None
    assert item_name(dm.test_set, 17) == "test[17]" and item_name(dm.test_set, 0, split="val") == "val[0]"
    assert class_names(dm.test_set) is None


def test_dtd_and_office_home_splits_name_files_and_classes(tmp_path: Path) -> None:
    dtd = DTDDataModule(write_dtd(tmp_path / "dtd", classes=3, per_class=3, size=(8, 8)), num_classes=3)
    dtd.setup("test")
    raw = dtd.build_split("test")
    assert item_name(dtd.test_set, 1) == str(raw.samples[1][0]) and Path(item_name(dtd.test_set, 1)).is_file()
    assert class_names(dtd.test_set) == ["banded", "blotchy", "braided"]
    office = OfficeHomeDataModule(write_office_home(tmp_path / "oh", classes=2, per_domain=5, size=(8, 8)),
                                  num_classes=2)
    office.setup("test")
    raw = office.build_split("test")
    assert item_name(office.test_set, 2) == str(raw.samples[2][0])
    assert class_names(office.test_set) == ["Alarm_Clock", "Backpack"]
