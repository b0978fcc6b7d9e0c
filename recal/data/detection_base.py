"""What the detection datamodules share: list collation, aspect-ratio grouping.

A detection item is ``(image, target)``: ``image`` a float (3, H, W) tensor in [0, 1] at the
image's own size (the detector's ``GeneralizedRCNNTransform`` resizes and normalises), ``target``
a dict with ``boxes`` (K, 4) float ``x1, y1, x2, y2`` in pixels, ``labels`` (K,) int64 and
``image_id`` (an int); evaluation targets may add ``iscrowd`` (K,) for the COCO protocol. Images
differ in size, so a batch is a pair of tuples (images, targets), never a stacked tensor.

Randomness follows :mod:`recal.data.sampling`: the train order comes from an
:class:`~recal.data.sampling.EpochSeededSampler` and each sample's augmentation (a horizontal
flip, for COCO) runs in a :class:`~recal.data.sampling.SeededJointTransformDataset`, so both are a
pure function of (seed, epoch, index). :class:`AspectRatioGroupedSampler` reorders an epoch so
that each batch holds images of one aspect-ratio group (torchvision's detection references'
``GroupedBatchSampler`` idea, which saves padding: a batch is padded to its largest image).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from recal.data.resumable import ResumableDataLoader
from recal.data.sampling import EpochSeededSampler
from recal.errors import InvalidOptionError

__all__ = ["AspectRatioGroupedSampler", "DetectionDataModule",
           "aspect_ratio_groups", "collate_detection"]

JointTransform = Callable[[Any, Any], tuple[Any, Any]]


def collate_detection(batch: Sequence[tuple[Any, Any]]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``[(image, target), …]`` → ``(images, targets)``: variable-size images stay a tuple."""
    return tuple(zip(*batch)) if batch else ((), ())


def aspect_ratio_groups(aspect_ratios: Sequence[float], factor: int) -> list[int]:
    """The group of each width / height ratio: torchvision's references' ``2 ** linspace(-1, 1, 2·factor + 1)`` bins.

    ``factor`` 3 (the references' default) gives 7 bin edges from 1/2 to 2, so 8 groups.
    """
    bins = (2 ** np.linspace(-1, 1, 2 * factor + 1)).tolist() if factor > 0 else [1.0]
    return np.digitize(np.asarray(aspect_ratios, dtype=np.float64), bins).tolist()


class AspectRatioGroupedSampler(EpochSeededSampler):
    """An :class:`EpochSeededSampler` whose epoch order puts images of one aspect-ratio group in each batch.

    This rank's seeded order is walked once; each sample joins its group's buffer, and a full
    buffer (``batch_size`` samples) is emitted as the next batch — the references'
    ``GroupedBatchSampler``. What is left in the buffers at the end (under ``batch_size`` per
    group) follows in order, so those last batches may mix groups; unlike the references, no
    sample is repeated to fill them. Being a ``DistributedSampler`` with explicit rank, it is
    left in place by Lightning under DDP, and a mid-epoch resume skips samples as usual.
    """

    def __init__(self, group_ids: Sequence[int], batch_size: int, **kwargs: Any) -> None:
        super().__init__(len(group_ids), batch_size=batch_size, **kwargs)
        self.group_ids = list(group_ids)

    def indices(self) -> list[int]:
        order: list[int] = []
        buffers: dict[int, list[int]] = defaultdict(list)
        for index in super().indices():
            buffer = buffers[self.group_ids[index]]
            buffer.append(index)
            if len(buffer) == self.batch_size:
                order += buffer
                buffer.clear()
        for buffer in buffers.values():
            order += buffer
        return order


class DetectionDataModule(L.LightningDataModule):
    """Train / val / predict loaders of detection items; subclasses build the datasets.

    ``batch_size`` is images per device. ``num_classes`` (set in ``__init__``: cli.py links
    it to the task) counts the label indices the detector outputs, background 0 included.
    ``aspect_ratio_group_factor`` > 0 groups training batches by aspect ratio (see
    :func:`aspect_ratio_groups`); 0 keeps the plain seeded order. The train loader drops a
    last partial batch; validation and predict keep dataset order and every image (predict
    reads the validation split).

    Subclasses implement :meth:`build_train`, :meth:`build_val` (datasets of joint-transformed
    items) and :meth:`train_aspect_ratios` (width / height of each training image, needed only
    for grouping).
    """

    def __init__(self, num_classes: int, batch_size: int, num_workers: int = 0, seed: int = 0,
                 aspect_ratio_group_factor: int = 0) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidOptionError(f"data.batch_size={batch_size}; expected a positive integer (images per device)")
        if num_workers < 0:
            raise InvalidOptionError(f"data.num_workers={num_workers}; expected 0 or more")
        if aspect_ratio_group_factor < 0:
            raise InvalidOptionError(f"data.aspect_ratio_group_factor={aspect_ratio_group_factor}; expected 0 "
                                     "(no grouping) or a positive number of bins per side of ratio 1")
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.aspect_ratio_group_factor = aspect_ratio_group_factor
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    # --- what a subclass provides -------------------------------------------------------------

    def build_train(self) -> Dataset:
        """The training split: items ``(image, target)`` after the seeded augmentation."""
        raise NotImplementedError

    def build_val(self) -> Dataset:
        """The validation split, deterministic items (predict reads it too)."""
        raise NotImplementedError

    def train_aspect_ratios(self) -> list[float]:
        """Width / height of every training image, in dataset order (for aspect-ratio grouping)."""
        raise NotImplementedError

    # --- Lightning hooks ----------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = self.build_train()
        if self.val_set is None:
            self.val_set = self.build_val()

    def _loader(self, dataset: Dataset, loader_class: type[DataLoader] = DataLoader, **kwargs: Any) -> DataLoader:
        return loader_class(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                            collate_fn=collate_detection, **kwargs)

    def train_sampler(self) -> EpochSeededSampler:
        """This rank's seeded training order, grouped by aspect ratio when asked."""
        if self.train_set is None:
            self.setup("fit")
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        common = dict(num_replicas=world, rank=rank, shuffle=True, seed=self.seed, drop_last=True)
        if self.aspect_ratio_group_factor:
            groups = aspect_ratio_groups(self.train_aspect_ratios(), self.aspect_ratio_group_factor)
            return AspectRatioGroupedSampler(groups, self.batch_size, **common)
        return EpochSeededSampler(len(self.train_set), batch_size=self.batch_size, **common)

    def train_dataloader(self) -> DataLoader:
        sampler = self.train_sampler()
        if sampler.num_samples < self.batch_size:
            raise InvalidOptionError(
                f"the training split has {len(self.train_set)} images, {sampler.num_samples} per rank over "
                f"{sampler.num_replicas} rank(s), fewer than one batch of data.batch_size={self.batch_size}; "
                f"lower data.batch_size to at most {max(sampler.num_samples, 1)}")
        return self._loader(self.train_set, ResumableDataLoader, sampler=sampler, drop_last=True,
                            batches_completed=self._batches_completed)

    def _batches_completed(self) -> int:
        trainer = self.trainer
        return 0 if trainer is None else trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        return self._loader(self.val_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The validation split, for ``cli.py predict``."""
        return self.val_dataloader()
