"""Display names of dataset items and class names, looked up through recal's dataset wrappers.

A datamodule's split is its raw dataset inside :class:`~recal.data.sampling.SeededTransformDataset`,
sometimes with ``torch.utils.data.Subset`` or ``ConcatDataset`` in between (the digits' split,
SVHN's train + extra). What names an item is at the bottom: a ``samples`` list of ``(path, ...)``
tuples (torchvision's ``ImageFolder``, :class:`~recal.data.images.RobustImageFolder`, DTD's and
Office-Home's image lists). In-memory datasets (the digits, CIFAR, SVHN) have no file per
item; their items are named ``<split>[<index>]`` by their position in the split.
"""

from __future__ import annotations

import bisect
import os
from typing import Any

from torch.utils.data import ConcatDataset, Dataset, Subset

from recal.data.sampling import SeededTransformDataset

__all__ = ["class_names", "item_name", "item_path"]


def _inner(dataset: Dataset, index: int) -> tuple[Dataset, int] | None:
    """The dataset one wrapper down and the item's index in it; None when ``dataset`` wraps nothing."""
    if isinstance(dataset, SeededTransformDataset):
        return dataset.dataset, index
    if isinstance(dataset, Subset):
        return dataset.dataset, int(dataset.indices[index])
    if isinstance(dataset, ConcatDataset):
        if index < 0:
            index += len(dataset)
        part = bisect.bisect_right(dataset.cumulative_sizes, index)
        offset = dataset.cumulative_sizes[part - 1] if part else 0
        return dataset.datasets[part], index - offset
    return None


def item_path(dataset: Dataset, index: int) -> str | None:
    """The file behind item ``index`` of ``dataset``, as the dataset stores it; None if it has no file.

    Wrappers are followed down to a dataset with a ``samples`` list whose entries start with a
    path (``str`` or ``os.PathLike``). The path is not resolved: a dataset built from a relative
    root gives a path relative to the directory the run started in.
    """
    while True:
        samples = getattr(dataset, "samples", None)
        if samples is not None:
            entry = samples[index]
            first = entry[0] if isinstance(entry, (tuple, list)) and entry else None
            return os.fspath(first) if isinstance(first, (str, os.PathLike)) else None
        inner = _inner(dataset, index)
        if inner is None:
            return None
        dataset, index = inner


def item_name(dataset: Dataset, index: int, split: str = "test") -> str:
    """Item ``index``'s file path where it has one (see :func:`item_path`), else ``<split>[<index>]``."""
    path = item_path(dataset, index)
    return path if path is not None else f"{split}[{index}]"


def class_names(dataset: Dataset) -> list[str] | None:
    """The first ``classes`` list found through the wrappers (index = class id); None if there is none.

    A ``ConcatDataset`` gives the classes of its first part, since its parts share one label space.
    """
    while True:
        classes: Any = getattr(dataset, "classes", None)
        if classes is not None:
            return [str(name) for name in classes]
        if isinstance(dataset, (SeededTransformDataset, Subset)):
            dataset = dataset.dataset
        elif isinstance(dataset, ConcatDataset) and dataset.datasets:
            dataset = dataset.datasets[0]
        else:
            return None
