"""The classification DataModule base: loaders, sampling and seeding shared by every dataset.

A subclass only says how to build its raw splits (items ``(PIL image or uint8 tensor,
target)``) and its two transforms; this base wraps them in
:class:`~recal.data.sampling.SeededTransformDataset` and builds the loaders, so that the sample
order and the augmentation of every dataset are a pure function of (seed, epoch, index).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from recal.data.resumable import ResumableDataLoader
from recal.data.sampling import EpochSeededSampler, SeededTransformDataset
from recal.errors import InvalidOptionError

__all__ = ["ClassificationDataModule"]

Transform = Callable[[Any], Any]


class ClassificationDataModule(L.LightningDataModule):
    """Train / val / test loaders for image classification; subclasses provide the datasets.

    ``batch_size`` is per device. ``num_classes`` is an attribute from ``__init__`` on, because
    LightningCLI's ``link_arguments`` reads it right after construction, before :meth:`setup`.
    The training loader uses an :class:`~recal.data.sampling.EpochSeededSampler` (rank and world
    size from the attached trainer, else 0 and 1) with ``drop_last=True``: a BatchNorm over
    (N, C, 1, 1) gate scores fails on a last batch of one. ``interleave_ranks=R`` makes one
    process see the micro-batches of ``R`` DDP ranks in turn (use with
    ``accumulate_grad_batches=R``). Validation and test loaders keep dataset order and every
    sample.

    Subclasses implement :meth:`build_split`, :meth:`train_transform` and :meth:`eval_transform`,
    and may override :meth:`extra_val_splits` (more validation sets, logged under their names)
    and :meth:`check_splits` (cross-split checks run once at the start of :meth:`setup`).
    """

    def __init__(
        self,
        num_classes: int,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise InvalidOptionError(f"data.batch_size={batch_size}; expected a positive integer (per device)")
        if num_workers < 0:
            raise InvalidOptionError(f"data.num_workers={num_workers}; expected 0 or more")
        if interleave_ranks < 1:
            raise InvalidOptionError(f"data.interleave_ranks={interleave_ranks}; expected 1 or more")
        self.save_hyperparameters()
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.interleave_ranks = interleave_ranks
        self.collate_fn: Callable[[list[Any]], Any] | None = None
        self.train_set: SeededTransformDataset | None = None
        self.val_sets: dict[str, SeededTransformDataset] | None = None
        self.test_set: SeededTransformDataset | None = None
        # Metric prefixes of the validation loaders, known before setup; a subclass that adds
        # extra_val_splits appends their names here in its __init__.
        self.val_names: list[str] = ["val"]

    # --- what a subclass provides -------------------------------------------------------------

    def build_split(self, split: str) -> Dataset:
        """The raw ``split`` ("train", "val" or "test") with ``(image, target)`` items."""
        raise NotImplementedError

    def train_transform(self) -> Transform:
        """The random training transform (image in, normalised float tensor out)."""
        raise NotImplementedError

    def eval_transform(self) -> Transform:
        """The deterministic evaluation transform."""
        raise NotImplementedError

    def extra_val_splits(self) -> dict[str, Dataset]:
        """Further validation sets keyed by their names in :attr:`val_names`; none by default."""
        return {}

    def check_splits(self) -> None:
        """Checks across splits (e.g. matching class folders), run before any split is built."""

    # --- Lightning hooks ----------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Build the splits ``stage`` needs (all when ``stage`` is None), once each."""
        if self.train_set is None and self.val_sets is None and self.test_set is None:
            self.check_splits()
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = SeededTransformDataset(self.build_split("train"), self.train_transform(), self.seed)
        if stage in ("fit", "validate", None) and self.val_sets is None:
            splits = {"val": self.build_split("val"), **self.extra_val_splits()}
            self.val_sets = {name: SeededTransformDataset(ds, self.eval_transform(), self.seed)
                             for name, ds in splits.items()}
        if stage in ("test", "predict", None) and self.test_set is None:
            self.test_set = SeededTransformDataset(self.build_split("test"), self.eval_transform(), self.seed)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(self, dataset: Dataset, loader_class: type[DataLoader] = DataLoader, **kwargs: Any) -> DataLoader:
        return loader_class(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=self.collate_fn,
            **kwargs,
        )

    def train_sampler(self) -> EpochSeededSampler:
        """The training sampler for this process's rank (see the class docstring)."""
        if self.train_set is None:
            self.setup("fit")
        rank, world = self._rank_and_world()
        return EpochSeededSampler(len(self.train_set), num_replicas=world, rank=rank, shuffle=True,
                                  seed=self.seed, drop_last=True, interleave_ranks=self.interleave_ranks,
                                  batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        """Shuffled by (seed, epoch), this rank's share, full batches only."""
        sampler = self.train_sampler()
        per_rank = len(self.train_set) // (sampler.num_replicas * self.interleave_ranks)
        if per_rank < self.batch_size:
            raise InvalidOptionError(
                f"the training split has {len(self.train_set)} samples, {per_rank} per rank over "
                f"{sampler.num_replicas * self.interleave_ranks} rank(s), fewer than one batch of "
                f"data.batch_size={self.batch_size}; with drop_last no training step would run. "
                f"Lower data.batch_size to at most {max(per_rank, 1)}")
        return self._loader(self.train_set, ResumableDataLoader, sampler=sampler, drop_last=True,
                            batches_completed=self._batches_completed)

    def _batches_completed(self) -> int:
        """Training batches finished in the current epoch (what a mid-epoch checkpoint must skip)."""
        trainer = self.trainer
        return 0 if trainer is None else trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader, or one per validation set (names in :attr:`val_names`) when there are several."""
        if self.val_sets is None:
            self.setup("validate")
        loaders = [self._loader(ds, shuffle=False) for ds in self.val_sets.values()]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> DataLoader:
        """The test split in dataset order."""
        if self.test_set is None:
            self.setup("test")
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split, for ``cli.py predict``."""
        return self.test_dataloader()

    def skipped_images(self) -> dict[str, int]:
        """Corrupt images skipped so far, by split (empty for datasets that never skip)."""
        return {}
