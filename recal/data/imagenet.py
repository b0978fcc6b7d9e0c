"""ImageNet-style folders: ``root/train/<class>/*`` and ``root/val/<class>/*``.

Serves ImageNet (ILSVRC-2012, val sorted into class folders) and Stylized-ImageNet, which uses
the same layout. Class folders are checked against each other and against ``num_classes``
before anything is loaded, so a wrong root or a half-extracted copy fails with a message that
names the folders, not with a shape error in the classifier an hour later.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from torch.utils.data import Dataset

from recal.data.base import ClassificationDataModule, Transform
from recal.data.images import RobustImageFolder, collate_skipping_none, find_class_folders
from recal.data.transforms import imagenet_eval, imagenet_train
from recal.errors import DatasetNotFoundError, InvalidOptionError

__all__ = ["ImageFolderDataModule", "ImageNetDataModule", "StylizedImageNetDataModule"]


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class ImageFolderDataModule(ClassificationDataModule):
    """Train on ``root/train``, validate and test on ``root/val`` (ImageNet's layout).

    ``num_classes`` must be given (LightningCLI links it to the model before :meth:`setup`) and
    is checked against the class folders in :meth:`setup`; train and val must hold the same
    class folders. Transforms: RandomResizedCrop(``image_size``) + flip for training,
    Resize(``resize_size``) + CenterCrop(``image_size``) for evaluation. ``skip_corrupt`` skips
    undecodable images (counted in :meth:`skipped_images`) instead of stopping the run.
    ``extra_val_root`` adds a second validation set, ``extra_val_root/val``, whose metrics the
    task logs under ``extra_val_name`` (e.g. ImageNet val for a Stylized-ImageNet run); then
    :meth:`val_dataloader` returns two loaders, in the order of :attr:`val_names`.
    """

    display_name: ClassVar[str] = "ImageFolder"

    def __init__(
        self,
        root: str | Path,
        num_classes: int = 1000,
        batch_size: int = 256,
        num_workers: int = 8,
        image_size: int = 224,
        resize_size: int = 256,
        skip_corrupt: bool = False,
        seed: int = 0,
        extra_val_root: str | Path | None = None,
        extra_val_name: str = "val_in",
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__(num_classes=num_classes, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         interleave_ranks=interleave_ranks)
        if image_size < 1 or resize_size < 1:
            raise InvalidOptionError(
                f"data.image_size={image_size}, data.resize_size={resize_size}; expected positive sizes")
        if extra_val_root is not None and extra_val_name == "val":
            raise InvalidOptionError('data.extra_val_name="val" is taken by the main validation set')
        self.root = Path(root)
        self.image_size = image_size
        self.resize_size = resize_size
        self.skip_corrupt = skip_corrupt
        self.extra_val_root = None if extra_val_root is None else Path(extra_val_root)
        self.extra_val_name = extra_val_name
        if self.extra_val_root is not None:
            self.val_names.append(extra_val_name)
        if skip_corrupt:
            self.collate_fn = collate_skipping_none
        self._folders: dict[str, RobustImageFolder] = {}

    def _layout(self) -> str:
        return (f"expected {self.root}/train/<class>/*.JPEG and {self.root}/val/<class>/*.JPEG "
                f"(ILSVRC-2012 val must first be sorted into class folders)")

    def _split_dir(self, root: Path, split: str) -> Path:
        what, layout = self._describe(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"{what} {root} does not exist; {layout}")
        folder = root / split
        if not folder.is_dir():
            raise DatasetNotFoundError(f"{what} {root} has no {split}/ folder; {layout}")
        return folder

    def _describe(self, root: Path) -> tuple[str, str]:
        """What ``root`` is (the main root or the extra validation root) and the layout expected of it."""
        # the extra root is another dataset (ImageNet beside Stylized-ImageNet): an error must name
        # it, and the layout it lacks, rather than the main root
        if self.extra_val_root is not None and root == self.extra_val_root and root != self.root:
            return ("data.extra_val_root", f"expected {root}/val/<class>/*.JPEG (the {self.extra_val_name} "
                                           f"validation set) with the class folders of {self.root / 'train'}")
        return f"{self.display_name} root", self._layout()

    def check_splits(self) -> None:
        """Train and val (and the extra val set) hold the same classes, ``num_classes`` of them."""
        train = find_class_folders(self._split_dir(self.root, "train"))
        vals = {"val": self._split_dir(self.root, "val")}
        if self.extra_val_root is not None:
            vals[self.extra_val_name] = self._split_dir(self.extra_val_root, "val")
        if len(train) != self.num_classes:
            raise InvalidOptionError(
                f"data.num_classes={self.num_classes} but {self.root / 'train'} has {len(train)} class "
                f"folders ({_names(train)}); set data.num_classes: {len(train)}")
        for folder in vals.values():
            val = find_class_folders(folder)
            only_train = sorted(set(train) - set(val))
            only_val = sorted(set(val) - set(train))
            if only_train or only_val:
                parts = []
                if only_train:
                    parts.append(f"{len(only_train)} class folder(s) missing from {folder}: {_names(only_train)}")
                if only_val:
                    parts.append(f"{len(only_val)} class folder(s) of {folder} missing from "
                                 f"{self.root / 'train'}: {_names(only_val)}")
                raise DatasetNotFoundError("train and val classes differ: " + "; ".join(parts))

    def _folder(self, directory: Path) -> RobustImageFolder:
        key = str(directory)
        if key not in self._folders:
            self._folders[key] = RobustImageFolder(directory, skip_corrupt=self.skip_corrupt,
                                                   counter_slots=self.num_workers + 1)
        return self._folders[key]

    def build_split(self, split: str) -> Dataset:
        # "test" reuses the val folder (ImageNet's test labels are not public).
        return self._folder(self._split_dir(self.root, "train" if split == "train" else "val"))

    def extra_val_splits(self) -> dict[str, Dataset]:
        if self.extra_val_root is None:
            return {}
        return {self.extra_val_name: self._folder(self._split_dir(self.extra_val_root, "val"))}

    def train_transform(self) -> Transform:
        return imagenet_train(self.image_size)

    def eval_transform(self) -> Transform:
        return imagenet_eval(self.image_size, self.resize_size)

    def skipped_images(self) -> dict[str, int]:
        """Corrupt images skipped so far by each folder (``train``, ``val``, extra name).

        Counted across DataLoader workers through shared memory (see
        :class:`~recal.data.images.SkipCounter`); totals accumulate over epochs. The test loader
        reads the val folder, so its skips add to ``val``.
        """
        names = {str(self.root / "train"): "train", str(self.root / "val"): "val"}
        if self.extra_val_root is not None:
            names[str(self.extra_val_root / "val")] = self.extra_val_name
        return {names[key]: folder.skipped.total() for key, folder in self._folders.items()}


class ImageNetDataModule(ImageFolderDataModule):
    """ILSVRC-2012 (1,000 classes) with the official SRM recipe's transforms (224 / 256)."""

    display_name = "ImageNet"


class StylizedImageNetDataModule(ImageFolderDataModule):
    """Stylized-ImageNet (Geirhos et al. 2019), ImageNet's layout and classes.

    Typically validated on its own val and, through ``extra_val_root`` (an ImageNet root), on
    ImageNet val logged as ``val_in``.
    """

    display_name = "Stylized-ImageNet"
