"""Robust image files: decoding any common mode to 8-bit RGB, and a stricter ImageFolder.

Real image collections (ImageNet, Stylized-ImageNet, Office-Home, DTD) contain CMYK and
grayscale JPEGs, palette and RGBA PNGs, the occasional 16-bit PNG, stray non-image files and
now and then a truncated download. :func:`load_rgb` turns each of these into the same 8-bit RGB
image or a :class:`~recal.errors.CorruptImageError` that names the file;
:class:`RobustImageFolder` is torchvision's ``ImageFolder`` with errors that name the folder and
the expected layout, and an option to skip (and count) corrupt files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate, get_worker_info
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import make_dataset

from recal.errors import CorruptImageError, DatasetNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "RobustImageFolder",
    "SkipCounter",
    "collate_skipping_none",
    "find_class_folders",
    "load_rgb",
    "to_rgb",
]

# torchvision's list; matched case-insensitively, so ImageNet's ".JPEG" is included.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded PIL image of any common mode to 8-bit RGB.

    16-bit grayscale (``I;16*``, and ``I`` as 16-bit PNGs open in older Pillow) is scaled by
    255/65535 *before* converting, because Pillow's ``convert("RGB")`` clips such images to
    white. Transparent images (RGBA, LA, PA, palette images with a transparency entry) are
    composited on a white background rather than having the alpha dropped: dropping it exposes
    whatever colour the encoder left under transparent pixels (often black), which is not what a
    viewer shows. Grayscale, palette, CMYK, YCbCr, LAB and 1-bit images use Pillow's conversion.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        # 16-bit sources are scaled by 1/257 (65535 -> 255), rounding to nearest.
        values = np.asarray(image, dtype=np.float64).clip(0, 65535)
        image = Image.fromarray(np.rint(values / 257.0).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.asarray(image).clip(0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image (see :func:`to_rgb` for the conversions).

    The file is decoded completely here, so a truncated or otherwise undecodable file raises
    :class:`~recal.errors.CorruptImageError` naming it (never a half-grey image: Pillow's
    ``LOAD_TRUNCATED_IMAGES`` is left off). A missing file raises
    :class:`~recal.errors.DatasetNotFoundError`.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"image file {path} does not exist") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot decode image {path}: {exc}") from exc


def find_class_folders(directory: str | os.PathLike, layout: str = "<class>/<image>") -> list[str]:
    """Sorted names of the class sub-folders of ``directory``, ignoring hidden folders.

    Hidden folders (``.ipynb_checkpoints``, ``.git``) would otherwise become classes, as they do
    in torchvision. Raises :class:`~recal.errors.DatasetNotFoundError` naming ``directory`` and
    the expected ``layout`` when the folder is missing or has no class folders.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetNotFoundError(f"{directory} is not a folder; expected {directory}/{layout}")
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DatasetNotFoundError(f"{directory} has no class folders; expected {directory}/{layout}")
    return classes


def _is_image_file(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


class SkipCounter:
    """Counts skipped files across DataLoader worker processes.

    The count lives in a shared-memory tensor with one slot per process (slot 0 the main
    process, slot ``w+1`` worker ``w``), so increments made inside workers are visible to the
    main process, with fork and spawn alike, and no two processes write the same slot. With
    more workers than ``slots - 1`` slots are shared and a concurrent increment may be lost.
    """

    def __init__(self, slots: int = 1) -> None:
        self._counts = torch.zeros(max(1, slots), dtype=torch.int64).share_memory_()

    def increment(self) -> None:
        """Add one to the calling process's slot."""
        info = get_worker_info()
        slot = 0 if info is None else (info.id + 1) % len(self._counts)
        self._counts[slot] += 1

    def total(self) -> int:
        """Number of files skipped since construction or the last :meth:`reset`."""
        return int(self._counts.sum())

    def reset(self) -> None:
        """Set the count back to zero."""
        self._counts.zero_()


class RobustImageFolder(ImageFolder):
    """torchvision's ``ImageFolder`` (``root/<class>/**/<image>``) with clear errors and skipping.

    Differences from torchvision: images are read with :func:`load_rgb`; only files with an
    :data:`IMAGE_EXTENSIONS` suffix count (``README.txt``, ``.DS_Store`` and hidden folders are
    ignored); a missing root, a root without class folders and an empty class folder raise
    :class:`~recal.errors.DatasetNotFoundError` naming the folder. With ``skip_corrupt=True`` an
    undecodable image is warned about, counted in :attr:`skipped` and returned as ``None``;
    :func:`collate_skipping_none` then leaves it out of its batch (a batch is one sample short).
    ``counter_slots`` should be ``num_workers + 1`` of the loader that reads this dataset.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        skip_corrupt: bool = False,
        counter_slots: int = 1,
    ) -> None:
        super().__init__(str(root), transform=transform, loader=load_rgb, is_valid_file=_is_image_file)
        self.skip_corrupt = skip_corrupt
        self.skipped = SkipCounter(counter_slots)

    def find_classes(self, directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
        """Class folder names and their indices, with :func:`find_class_folders`' errors."""
        classes = find_class_folders(directory)
        return classes, {name: i for i, name in enumerate(classes)}

    @staticmethod
    def make_dataset(
        directory: str | os.PathLike,
        class_to_idx: dict[str, int],
        extensions: tuple[str, ...] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        """``(path, class index)`` pairs; an empty class folder is an error naming it."""
        samples = make_dataset(directory, class_to_idx, extensions=extensions,
                               is_valid_file=is_valid_file, allow_empty=True)
        if not allow_empty:
            present = {target for _, target in samples}
            empty = [os.path.join(directory, name) for name, i in class_to_idx.items() if i not in present]
            if empty:
                shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
                raise DatasetNotFoundError(
                    f"class folder {shown} holds no image files; expected images with an extension "
                    f"in {', '.join(IMAGE_EXTENSIONS)} (case-insensitive)")
        return samples

    def __getitem__(self, index: int) -> tuple[Any, int] | None:
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except CorruptImageError as exc:
            if not self.skip_corrupt:
                raise
            self.skipped.increment()
            warnings.warn(f"skipping corrupt image: {exc}", stacklevel=2)
            return None
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


def collate_skipping_none(batch: list[Any]) -> Any:
    """``default_collate`` after dropping ``None`` items (skipped corrupt images).

    A batch in which every image was corrupt raises :class:`~recal.errors.CorruptImageError`:
    there is nothing to train on, and the dataset is more broken than ``skip_corrupt`` is for.
    """
    kept = [item for item in batch if item is not None]
    if not kept:
        raise CorruptImageError(f"all {len(batch)} images of a batch were corrupt and skipped")
    return default_collate(kept)
