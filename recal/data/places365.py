"""Places365 (Zhou et al., TPAMI 2018), the SE paper's scene-classification data, in torchvision's layout.

On disk under ``root`` (what torchvision's ``download=True`` leaves there):

- ``categories_places365.txt``: the 365 scene classes, lines ``/a/airfield 0``;
- file lists ``places365_train_standard.txt`` / ``places365_train_challenge.txt`` (lines
  ``/a/airfield/00000001.jpg 0``) and ``places365_val.txt`` (lines ``Places365_val_00000001.jpg 165``);
- training images in ``data_256_standard/`` / ``data_256_challenge/`` (the 256×256 "small"
  release) or ``data_large_standard/`` / ``data_large_challenge/`` (high resolution); validation
  images in ``val_256/`` or ``val_large/``. The official training archives unpack to ``data_256/``
  or ``data_large/``; torchvision renames that folder after the variant, so a copy unpacked by
  hand must be renamed the same way.

Places365-Standard has about 1.8 million training images, Places365-Challenge about 8 million;
both are validated on the official val split (36,500 images). The test split's labels are not
public, so ``test`` reads val, as for ImageNet. torchvision parses the lists; the checks of the
layout, and of the lists' MD5s, are made here once, with errors that name the missing path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset
from torchvision.datasets import Places365
from torchvision.datasets import places365 as tv_places365

from recal.data.base import ClassificationDataModule, Transform
from recal.data.cifar import dataset_file_problems
from recal.data.images import load_rgb
from recal.data.transforms import imagenet_eval, imagenet_train
from recal.errors import DatasetNotFoundError, InvalidOptionError

__all__ = ["Places365DataModule", "image_folders"]

TrainSplit = Literal["train-standard", "train-challenge"]
TRAIN_SPLITS = ("train-standard", "train-challenge")
# (file name, md5) of the category file and of each split's file list, as torchvision knows them.
CATEGORY_FILE: tuple[str, str] = Places365._CATEGORIES_META
FILE_LISTS: dict[str, tuple[str, str]] = Places365._FILE_LIST_META


def image_folders(root: str | Path, split: str, small: bool) -> tuple[Path, Path]:
    """The training and validation image folders of ``split`` under ``root`` (torchvision's ``images_dir``)."""
    size = "256" if small else "large"
    variant = split.removeprefix("train-")
    return Path(root) / f"data_{size}_{variant}", Path(root) / f"val_{size}"


class _Places365(Places365):
    """torchvision's Places365 read with :func:`~recal.data.images.load_rgb`, minus its MD5 checks.

    :class:`Places365DataModule` checks the files (and their MD5s, unless told not to) once before
    any split is built. ``samples`` is torchvision's ``imgs`` under the name
    :mod:`recal.data.names` reads, and ``classes`` is ordered by class index.
    """

    def __init__(self, root: Path, split: str, small: bool) -> None:
        super().__init__(str(root), split=split, small=small, loader=load_rgb)
        self.samples = self.imgs
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.__getitem__)

    def _check_integrity(self, file: str, md5: str, download: bool) -> bool:
        # False would make torchvision download the file list, whatever data.download says
        return True


class Places365DataModule(ClassificationDataModule):
    """Places365: train on ``split``, validate (and test) on the official val split; 365 classes.

    ``split`` picks the training list: ``train-standard`` (about 1.8 M images) or
    ``train-challenge`` (about 8 M), the one the SE paper trained its Places365 models on.
    ``small`` reads the 256×256 images (torchvision's default is the high-resolution ones).
    Transforms: RandomResizedCrop(``image_size``) + flip for training, Resize(``resize_size``) +
    CenterCrop(``image_size``) for evaluation, as for ImageNet. ``download=True`` fetches the file
    lists and the images of ``split`` and val in :meth:`prepare_data` (once per node under DDP)
    unless they are already there; ``verify_md5=False`` accepts file lists that are not the
    official release (fixtures, edited lists), which must still exist. ``num_classes`` is
    checked against the category file. A listed image that is missing fails when it is read,
    naming the file; it is not looked for up front, since Places365-Challenge lists 8 million.
    """

    def __init__(
        self,
        root: str | Path = "data/places365",
        split: TrainSplit = "train-standard",
        small: bool = True,
        download: bool = False,
        verify_md5: bool = True,
        num_classes: int = 365,
        batch_size: int = 256,
        num_workers: int = 8,
        image_size: int = 224,
        resize_size: int = 256,
        seed: int = 0,
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__(num_classes=num_classes, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         interleave_ranks=interleave_ranks)
        if split not in TRAIN_SPLITS:
            raise InvalidOptionError(f"data.split={split!r}; expected 'train-standard' or 'train-challenge' "
                                     f"(validation always uses the official val split)")
        if image_size < 1 or resize_size < 1:
            raise InvalidOptionError(
                f"data.image_size={image_size}, data.resize_size={resize_size}; expected positive sizes")
        self.root = Path(root)
        self.split = split
        self.small = small
        self.download = download
        self.verify_md5 = verify_md5
        self.image_size = image_size
        self.resize_size = resize_size
        self._val: Dataset | None = None

    def _files(self) -> list[tuple[str, str]]:
        """(name, md5) of the category file and the file lists this run reads."""
        return [CATEGORY_FILE, FILE_LISTS[self.split], FILE_LISTS["val"]]

    def _problems(self) -> list[str]:
        problems = dataset_file_problems(self.root, self._files(), self.verify_md5, tv_places365.check_integrity)
        for folder in image_folders(self.root, self.split, self.small):
            if not folder.is_dir():
                # only the training archives unpack to a folder that torchvision then renames
                unpacked = folder.with_name(folder.name.rsplit("_", 1)[0])
                renamed = folder.name.startswith("data_") and unpacked.is_dir()
                problems.append(f"{folder}/ is missing" + (
                    f" ({unpacked}/ exists: rename it to {folder.name}/ if it holds these images, "
                    f"as torchvision does)" if renamed else ""))
        return problems

    def _layout(self) -> str:
        train, val = image_folders(self.root, self.split, self.small)
        files = ", ".join(name for name, _ in self._files())
        return (f"Expected torchvision's layout: {self.root}/{{{files}}} and the images in {train}/ and {val}/ "
                f"(data.download: true fetches them)")

    def prepare_data(self) -> None:
        """Download what :meth:`check_splits` would miss, when ``download`` is set."""
        if not self.download or not self._problems():
            return
        for split in (self.split, "val"):
            try:
                Places365(str(self.root), split=split, small=self.small, download=True)
            except (OSError, RuntimeError) as exc:
                raise DatasetNotFoundError(f"could not download Places365 {split} into {self.root}: {exc}") from exc

    def check_splits(self) -> None:
        """The files and image folders exist (MD5s match) and the category file lists ``num_classes``."""
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"Places365 root {self.root} does not exist. {self._layout()}")
        problems = self._problems()
        if problems:
            hint = "; for lists that are not the official release set data.verify_md5: false" \
                if any("MD5" in p for p in problems) else ""
            raise DatasetNotFoundError(
                f"Places365 root {self.root} is not usable: {'; '.join(problems)}. {self._layout()}{hint}")
        categories = self.root / CATEGORY_FILE[0]
        count = sum(1 for line in categories.read_text().splitlines() if line.strip())
        if count != self.num_classes:
            raise InvalidOptionError(f"data.num_classes={self.num_classes} but {categories} lists {count} "
                                     f"categories; set data.num_classes: {count}")

    def build_split(self, split: str) -> Dataset:
        if split == "train":
            return _Places365(self.root, self.split, self.small)
        if self._val is None:  # "val" and "test" share the official val split: parse its list once
            self._val = _Places365(self.root, "val", self.small)
        return self._val

    def train_transform(self) -> Transform:
        return imagenet_train(self.image_size)

    def eval_transform(self) -> Transform:
        return imagenet_eval(self.image_size, self.resize_size)
