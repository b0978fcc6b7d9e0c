"""SVHN (cropped digits) in torchvision's format: ``root/{train,test,extra}_32x32.mat``.

The ``.mat`` files hold ``X`` uint8 (32, 32, 3, N) and ``y`` (N, 1) with 10 meaning digit 0;
torchvision reads them with scipy. As for CIFAR, a missing file is named and
``verify_md5=False`` accepts files that are not the official release; the check goes through
``torchvision.datasets.svhn.check_integrity`` so tests may patch that instead.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset
from torchvision.datasets import SVHN
from torchvision.datasets import svhn as tv_svhn

from recal.data.base import ClassificationDataModule, Transform
from recal.data.cifar import dataset_file_problems
from recal.data.transforms import SVHN_MEAN, SVHN_STD, cifar_eval, cifar_train
from recal.errors import DatasetNotFoundError

__all__ = ["SVHNDataModule"]


class _SVHN(SVHN):
    """torchvision's SVHN minus its MD5 check, which the DataModule runs once (or not at all)."""

    def _check_integrity(self) -> bool:
        _, filename, md5 = self.split_list[self.split]
        return not dataset_file_problems(Path(self.root), [(filename, md5)], verify_md5=False)


class SVHNDataModule(ClassificationDataModule):
    """SVHN digits (73,257 train / 26,032 test; ``include_extra`` adds 531,131 to train).

    The test split serves as val and test. By default training images are not augmented, the
    protocol of Wide ResNets (Zagoruyko & Komodakis 2016) on SVHN; ``augment=True`` adds a pad-4
    random crop (never a flip: digits). ``download=True`` fetches the missing ``.mat`` files in
    :meth:`prepare_data`; ``verify_md5=False`` skips the checksum.
    """

    def __init__(
        self,
        root: str | Path,
        download: bool = False,
        verify_md5: bool = True,
        include_extra: bool = False,
        augment: bool = False,
        batch_size: int = 128,
        num_workers: int = 4,
        seed: int = 0,
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__(num_classes=10, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         interleave_ranks=interleave_ranks)
        self.root = Path(root)
        self.download = download
        self.verify_md5 = verify_md5
        self.include_extra = include_extra
        self.augment = augment
        self._test: Dataset | None = None
        self._files_ok = False

    def _splits(self) -> list[str]:
        return ["train", "test", "extra"] if self.include_extra else ["train", "test"]

    def _problems(self, splits: list[str]) -> list[str]:
        files = [(SVHN.split_list[s][1], SVHN.split_list[s][2]) for s in splits]
        return dataset_file_problems(self.root, files, self.verify_md5, tv_svhn.check_integrity)

    def prepare_data(self) -> None:
        """Download each missing (or MD5-failing) ``.mat`` file when ``download`` is set."""
        if not self.download:
            return
        for split in self._splits():
            if self._problems([split]):
                try:
                    SVHN(str(self.root), split=split, download=True)
                except (OSError, RuntimeError) as exc:
                    raise DatasetNotFoundError(f"could not download SVHN {split} into {self.root}: {exc}") from exc

    def _check_files(self) -> None:
        if self._files_ok:  # MD5s of up to 1.5 GB: check once, not once per split
            return
        problems = self._problems(self._splits())
        if problems:
            expected = ", ".join(SVHN.split_list[s][1] for s in self._splits())
            hint = "; for a copy that is not the official release set data.verify_md5: false" \
                if any("MD5" in p for p in problems) else ""
            raise DatasetNotFoundError(
                f"SVHN root {self.root} is not usable: {'; '.join(problems)}. Expected "
                f"{self.root}/{{{expected}}} (torchvision's format; data.download: true fetches it){hint}")
        self._files_ok = True

    def build_split(self, split: str) -> Dataset:
        self._check_files()
        if split == "train":
            parts = [_SVHN(str(self.root), s) for s in self._splits() if s != "test"]
            return parts[0] if len(parts) == 1 else ConcatDataset(parts)
        if self._test is None:  # "val" and "test" share the test split: load it once
            self._test = _SVHN(str(self.root), "test")
        return self._test

    def train_transform(self) -> Transform:
        if not self.augment:
            return self.eval_transform()
        return cifar_train(size=32, padding=4, flip=False, mean=SVHN_MEAN, std=SVHN_STD)

    def eval_transform(self) -> Transform:
        return cifar_eval(mean=SVHN_MEAN, std=SVHN_STD)
