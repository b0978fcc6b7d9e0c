"""DTD, the Describable Textures Dataset (Cimpoi et al., CVPR 2014), in torchvision's layout.

On disk: ``root/dtd/dtd/images/<class>/<file>.jpg`` (47 classes, 5,640 images) and
``root/dtd/dtd/labels/{train,val,test}{1..10}.txt``, lines ``class/file.jpg``. Two
protocols:

- ``partition`` N in 1..10 (the official splits, 40 images per class in each): train on
  trainN, validate on valN, test on testN. torchvision 0.29.1 accepts 0 or 11 and then
  fails with a bare FileNotFoundError, so the range is checked here, at construction.
- ``kfold``: stratified k-fold (default 5, seeded; scikit-learn ``StratifiedKFold``) over
  every image under ``images/``; fold i is the test set, the other k − 1 folds train. There
  is no separate validation set: validation runs on fold i too (report the last epoch, not
  the best, as ``python -m recal.commands.folds`` does, so that no choice is made on the test fold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.model_selection import StratifiedKFold
from torch.utils.data import Dataset

from recal.data.base import ClassificationDataModule, Transform
from recal.data.images import IMAGE_EXTENSIONS, find_class_folders, load_rgb
from recal.data.transforms import imagenet_eval, imagenet_train
from recal.errors import DatasetNotFoundError, InvalidOptionError

__all__ = ["DTDDataModule", "ImageList", "dtd_folder", "kfold_indices", "read_dtd_images", "read_dtd_split"]

PARTITIONS = range(1, 11)
Protocol = Literal["partition", "kfold"]


class ImageList(Dataset):
    """``(path, target)`` samples read with :func:`~recal.data.images.load_rgb`; ``classes`` names the targets."""

    def __init__(self, samples: list[tuple[Path, int]], classes: list[str] | None = None) -> None:
        self.samples = samples
        self.classes = classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[object, int]:
        path, target = self.samples[index]
        return load_rgb(path), target


def dtd_folder(root: str | Path) -> Path:
    """``root/dtd/dtd`` (torchvision's layout), or an error naming what is missing."""
    folder = Path(root) / "dtd" / "dtd"
    for sub in ("images", "labels"):
        if not (folder / sub).is_dir():
            raise DatasetNotFoundError(
                f"DTD: {folder / sub} does not exist; expected torchvision's layout "
                f"{Path(root)}/dtd/dtd/images/<class>/*.jpg and {Path(root)}/dtd/dtd/labels/train1.txt …")
    return folder


def read_dtd_images(root: str | Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names and every ``(image path, class index)`` under ``images/``, sorted."""
    images = dtd_folder(root) / "images"
    classes = find_class_folders(images)
    samples = [(path, c) for c, name in enumerate(classes) for path in sorted((images / name).iterdir())
               if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")]
    return classes, samples


def read_dtd_split(root: str | Path, split: str, partition: int, classes: list[str]) -> list[tuple[Path, int]]:
    """The ``(image path, class index)`` pairs listed in ``labels/<split><partition>.txt``."""
    folder = dtd_folder(root)
    label_file = folder / "labels" / f"{split}{partition}.txt"
    if not label_file.is_file():
        raise DatasetNotFoundError(f"DTD label file {label_file} does not exist")
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for n, line in enumerate(label_file.read_text().split(), start=1):
        name = line.split("/")[0]
        path = folder / "images" / line
        if name not in index or not path.is_file():
            raise DatasetNotFoundError(f"{label_file}:{n} lists {line}, but {path} does not exist")
        samples.append((path, index[name]))
    return samples


def kfold_indices(targets: list[int] | np.ndarray, folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of ``fold`` under a seeded stratified ``folds``-fold split."""
    targets = np.asarray(targets)
    smallest = int(np.bincount(targets).min()) if len(targets) else 0
    if smallest < folds:
        raise InvalidOptionError(f"data.folds={folds} but a class has only {smallest} images; "
                                 f"stratified k-fold needs at least one image per class in every fold")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(targets)), targets))[fold]


class DTDDataModule(ClassificationDataModule):
    """DTD under one official partition (1..10) or one fold of a stratified k-fold split.

    Transforms: RandomResizedCrop(``image_size``) + flip for training; for evaluation,
    resize the short side to ``resize_size`` and centre-crop ``eval_crop_size`` (default
    ``image_size``). For multi-crop evaluation (``TextureTask(eval_crops=10)``) set
    ``eval_crop_size`` to ``resize_size`` so the task can cut its crops from the larger image.
    ``num_classes`` (47) is checked against the class folders.
    """

    def __init__(
        self,
        root: str | Path = "data/dtd",
        protocol: Protocol = "partition",
        partition: Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10] = 1,
        folds: int = 5,
        fold: int = 0,
        fold_seed: int = 0,
        num_classes: int = 47,
        batch_size: int = 64,
        num_workers: int = 4,
        image_size: int = 224,
        resize_size: int = 256,
        eval_crop_size: int | None = None,
        seed: int = 0,
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__(num_classes=num_classes, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         interleave_ranks=interleave_ranks)
        if protocol not in ("partition", "kfold"):
            raise InvalidOptionError(f"data.protocol={protocol!r}; expected 'partition' or 'kfold'")
        if partition not in PARTITIONS:
            raise InvalidOptionError(f"data.partition={partition}; DTD's official partitions are 1..10")
        if folds < 2:
            raise InvalidOptionError(f"data.folds={folds}; k-fold cross-validation needs at least 2 folds")
        if not 0 <= fold < folds:
            raise InvalidOptionError(f"data.fold={fold}; expected 0..{folds - 1} for data.folds={folds}")
        if min(image_size, resize_size, eval_crop_size or 1) < 1:
            raise InvalidOptionError("data.image_size, data.resize_size and data.eval_crop_size must be positive")
        self.root = Path(root)
        self.protocol = protocol
        self.partition = partition
        self.folds = folds
        self.fold = fold
        self.fold_seed = fold_seed
        self.image_size = image_size
        self.resize_size = resize_size
        self.eval_crop_size = eval_crop_size or image_size
        self._splits: dict[str, ImageList] | None = None

    def describe(self) -> str:
        """The split in words, e.g. ``partition 3`` or ``fold 2 of 5 (seed 0)``."""
        if self.protocol == "partition":
            return f"partition {self.partition}"
        return f"fold {self.fold} of {self.folds} (seed {self.fold_seed})"

    def _load(self) -> dict[str, ImageList]:
        classes, samples = read_dtd_images(self.root)
        if len(classes) != self.num_classes:
            raise InvalidOptionError(
                f"data.num_classes={self.num_classes} but {dtd_folder(self.root) / 'images'} has "
                f"{len(classes)} class folders; set data.num_classes: {len(classes)}")
        if self.protocol == "partition":
            return {split: ImageList(read_dtd_split(self.root, split, self.partition, classes), classes)
                    for split in ("train", "val", "test")}
        targets = [target for _, target in samples]
        train, test = kfold_indices(targets, self.folds, self.fold, self.fold_seed)
        test_set = ImageList([samples[i] for i in test], classes)
        return {"train": ImageList([samples[i] for i in train], classes), "val": test_set, "test": test_set}

    def build_split(self, split: str) -> Dataset:
        if self._splits is None:
            self._splits = self._load()
        return self._splits[split]

    def train_transform(self) -> Transform:
        return imagenet_train(self.image_size)

    def eval_transform(self) -> Transform:
        return imagenet_eval(self.eval_crop_size, self.resize_size)
