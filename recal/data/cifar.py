"""CIFAR-10 and CIFAR-100 in torchvision's on-disk format; the test split serves as val and test.

Layout: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` and
``root/cifar-100-python/{train,test,meta}`` (what torchvision's ``download=True`` extracts).
torchvision checks every file's MD5 and otherwise fails with a bare "Dataset not found or
corrupted" RuntimeError; here each missing file is named, and ``verify_md5=False`` accepts
files that are not the official release (small fixtures, a re-pickled copy). The check goes
through ``torchvision.datasets.cifar.check_integrity``, so tests may also patch that.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets import cifar as tv_cifar

from recal.data.base import ClassificationDataModule, Transform
from recal.data.transforms import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, cifar_eval, cifar_train
from recal.errors import DatasetNotFoundError

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule", "dataset_file_problems"]


def dataset_file_problems(folder: Path, files: list[tuple[str, str]], verify_md5: bool,
                          check_integrity: Callable[[str, str], bool] | None = None) -> list[str]:
    """Human-readable problems with ``files`` (name, md5) under ``folder``; empty when all is well."""
    check_integrity = check_integrity or tv_cifar.check_integrity
    problems = []
    for name, md5 in files:
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif verify_md5 and not check_integrity(str(path), md5):
            problems.append(f"{path} fails its MD5 check (not the official release)")
    return problems


def _files(dataset: type[CIFAR10]) -> list[tuple[str, str]]:
    meta = dataset.meta
    return [(n, m) for n, m in dataset.train_list + dataset.test_list] + [(meta["filename"], meta["md5"])]


class _CIFAR10(CIFAR10):
    """torchvision's CIFAR-10 minus its MD5 checks, which the DataModule runs once (or not at all)."""

    def _check_integrity(self) -> bool:
        return not dataset_file_problems(Path(self.root) / self.base_folder, _files(type(self)), verify_md5=False)

    def _load_meta(self) -> None:
        with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class _CIFAR100(_CIFAR10, CIFAR100):
    """torchvision's CIFAR-100 (folder, file names, label key) with :class:`_CIFAR10`'s checks."""


class CIFAR10DataModule(ClassificationDataModule):
    """CIFAR-10 (50,000 train / 10,000 test, 32x32): pad-4 crop + flip training, test split for val.

    ``download=True`` fetches the official archive into ``root`` in :meth:`prepare_data` (once per
    node under DDP) unless the files are already there. ``verify_md5=False`` skips the checksum
    (for fixtures and re-packed copies); files must still exist.
    """

    dataset_class: ClassVar[type[CIFAR10]] = _CIFAR10
    torchvision_class: ClassVar[type[CIFAR10]] = CIFAR10
    display_name: ClassVar[str] = "CIFAR-10"
    class_count: ClassVar[int] = 10
    mean: ClassVar[tuple[float, ...]] = CIFAR10_MEAN
    std: ClassVar[tuple[float, ...]] = CIFAR10_STD

    def __init__(
        self,
        root: str | Path,
        download: bool = False,
        verify_md5: bool = True,
        batch_size: int = 128,
        num_workers: int = 4,
        seed: int = 0,
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__(num_classes=self.class_count, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         interleave_ranks=interleave_ranks)
        self.root = Path(root)
        self.download = download
        self.verify_md5 = verify_md5
        self._test: Dataset | None = None
        self._files_ok = False

    def _problems(self) -> list[str]:
        return dataset_file_problems(self.root / self.dataset_class.base_folder, _files(self.dataset_class),
                                     self.verify_md5)

    def prepare_data(self) -> None:
        """Download the archive when ``download`` is set and the files are missing or fail MD5."""
        if not self.download or not self._problems():
            return
        try:
            self.torchvision_class(str(self.root), train=True, download=True)
        except (OSError, RuntimeError) as exc:
            raise DatasetNotFoundError(
                f"could not download {self.display_name} into {self.root}: {exc}") from exc

    def _check_files(self) -> None:
        if self._files_ok:  # MD5s of ~180 MB: check once, not once per split
            return
        problems = self._problems()
        if problems:
            folder = self.root / self.dataset_class.base_folder
            expected = ", ".join(name for name, _ in _files(self.dataset_class))
            hint = ""
            if any("MD5" in p for p in problems):
                hint = "; for a copy that is not the official release set data.verify_md5: false"
            raise DatasetNotFoundError(
                f"{self.display_name} root {self.root} is not usable: {'; '.join(problems)}. Expected "
                f"{folder}/{{{expected}}} (torchvision's format; data.download: true fetches it){hint}")
        self._files_ok = True

    def build_split(self, split: str) -> Dataset:
        self._check_files()
        if split == "train":
            return self.dataset_class(str(self.root), train=True)
        if self._test is None:  # "val" and "test" share the test split: load it once
            self._test = self.dataset_class(str(self.root), train=False)
        return self._test

    def train_transform(self) -> Transform:
        return cifar_train(size=32, padding=4, flip=True, mean=self.mean, std=self.std)

    def eval_transform(self) -> Transform:
        return cifar_eval(mean=self.mean, std=self.std)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 (fine labels, 100 classes); otherwise as :class:`CIFAR10DataModule`."""

    dataset_class = _CIFAR100
    torchvision_class = CIFAR100
    display_name = "CIFAR-100"
    class_count = 100
    mean = CIFAR100_MEAN
    std = CIFAR100_STD
