"""``predictions.csv``: the top-k classes and probabilities of every image a classification ``predict`` saw.

One row per image of the predict split (the test split, in dataset order), with the columns

- ``index``: the image's position in the split (what the rows are sorted by);
- ``image``: its file path as the dataset stores it (ImageFolder, DTD, Office-Home), or
  ``<split>[<index>]`` for in-memory datasets (digits, CIFAR, SVHN), e.g. ``test[17]``;
- ``class_1, prob_1, …, class_k, prob_k``: the k most probable classes, most probable first,
  by name where the dataset has ``classes`` (else the class index), and their softmax
  probabilities with 6 decimals; k is ``top_k`` (5) capped at the number of classes.

Images a ``skip_corrupt`` datamodule dropped from their batch get no row (a warning counts them).
Rows are written batch by batch, so a long predict holds no more than one batch of them.
"""

from __future__ import annotations

import csv
import heapq
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, TextIO

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from recal.data.images import load_rgb
from recal.data.names import class_names, item_name, item_path
from recal.errors import CorruptImageError
from recal.tasks.classification import ClassificationTask

__all__ = ["PredictionsCSV", "csv_header", "kept_indices", "merge_rank_files"]


def csv_header(k: int) -> list[str]:
    """``index, image, class_1, prob_1, …, class_k, prob_k``."""
    return ["index", "image", *[f"{name}_{j}" for j in range(1, k + 1) for name in ("class", "prob")]]


def kept_indices(dataset: Dataset, indices: Sequence[int], count: int) -> list[int]:
    """The ``count`` of ``indices`` whose images survived a batch that dropped corrupt ones.

    A ``skip_corrupt`` datamodule drops undecodable images while collating, so the batch has
    fewer predictions than Lightning's sampler indices. The dropped ones are found by decoding
    each file again with :func:`~recal.data.images.load_rgb` (not through the dataset, whose
    skip counter would count them twice); this only runs for such a batch.
    """
    def decodes(index: int) -> bool:
        path = item_path(dataset, index)
        if path is None:
            return True
        try:
            load_rgb(path)
        except CorruptImageError:
            return False
        return True

    kept = [i for i in indices if decodes(i)]
    if len(kept) != count:
        raise RuntimeError(f"a predict batch of {len(indices)} dataset indices gave {count} predictions, and "
                           f"{len(kept)} of its images decode; cannot tell which prediction is which image")
    return kept


def merge_rank_files(parts: Sequence[Path], target: Path) -> int:
    """Merge per-rank prediction files into ``target`` by their ``index`` column; returns the rows written.

    Under DDP, Lightning's predict sampler gives rank r the indices r, r + R, … in order, so each
    part is sorted and a streaming k-way merge restores dataset order without reading every
    row into memory. The parts are deleted once ``target`` is complete.
    """
    files = [open(part, newline="") for part in parts]
    try:
        readers = [csv.reader(f) for f in files]
        headers = [next(reader, None) for reader in readers]
        header = next((h for h in headers if h is not None), None)
        rows = 0
        with open(target, "w", newline="") as out:
            writer = csv.writer(out)
            if header is not None:
                writer.writerow(header)
            for row in heapq.merge(*readers, key=lambda r: int(r[0])):
                writer.writerow(row)
                rows += 1
    finally:
        for f in files:
            f.close()
    for part in parts:
        part.unlink()
    return rows


def _single_loader(loaders: Any) -> DataLoader:
    """The one predict dataloader (recal's datamodules have one); an error for several."""
    if isinstance(loaders, Mapping):
        loaders = list(loaders.values())
    if isinstance(loaders, Sequence):
        if len(loaders) != 1:
            raise RuntimeError(f"PredictionsCSV writes one predict dataloader; got {len(loaders)}")
        loaders = loaders[0]
    return loaders


class PredictionsCSV(BasePredictionWriter):
    """Writes ``<trainer.log_dir>/<filename>`` during ``predict`` (columns: see the module docstring).

    Active only when the module is a :class:`~recal.tasks.ClassificationTask` (its subclasses
    too), whose ``predict_step`` returns (N, num_classes) softmax probabilities; for any other
    module (style transfer returns images) it writes nothing, so it can sit in every run's
    callbacks. An absolute ``filename`` is used as it is. ``split`` names in-memory items
    (``test[17]``). Unless ``keep_in_memory``, the predict loop stops also collecting every
    batch's probabilities (``trainer.predict`` then returns None), as for the stylised images.

    Under DDP each rank writes ``<stem>.rank<k>.csv`` and, after a barrier, rank 0 merges
    them into ``<filename>`` in dataset order and deletes them; where rank 0 cannot see every
    part (several nodes without a shared log folder) the parts are left with a warning.
    """

    def __init__(self, filename: str = "predictions.csv", top_k: int = 5, split: str = "test",
                 keep_in_memory: bool = False) -> None:
        super().__init__(write_interval="batch")
        if top_k < 1:
            raise ValueError(f"top_k={top_k}; expected 1 or more")
        self.filename = filename
        self.top_k = top_k
        self.split = split
        self.keep_in_memory = keep_in_memory
        self.path: Optional[Path] = None  # the merged file, set at predict start
        self.rows = 0
        self.skipped = 0
        self._active = False
        self._file: Optional[TextIO] = None
        self._writer: Any = None
        self._dataset: Optional[Dataset] = None
        self._classes: Optional[list[str]] = None
        self._num_classes = 0

    # ------------------------------------------------------------------ files
    def target(self, trainer: L.Trainer) -> Path:
        """Where the merged file goes; calls ``trainer.log_dir``, a collective under DDP (call on every rank)."""
        return Path(trainer.log_dir or trainer.default_root_dir) / self.filename

    @staticmethod
    def rank_path(path: Path, rank: int) -> Path:
        """The part rank ``rank`` writes under DDP: ``predictions.rank<k>.csv``."""
        return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None

    # -------------------------------------------------------------- Lightning
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = isinstance(pl_module, ClassificationTask)
        if not self._active:
            return
        self._dataset = _single_loader(trainer.predict_dataloaders).dataset
        self._num_classes = int(pl_module.hparams.num_classes)
        names = class_names(self._dataset)
        self._classes = names if names is not None and len(names) == self._num_classes else None
        self.path = self.target(trainer)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = self.path if trainer.world_size == 1 else self.rank_path(self.path, trainer.global_rank)
        self._file = open(mine, "w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(csv_header(min(self.top_k, self._num_classes)))
        self.rows = self.skipped = 0
        if not self.keep_in_memory:
            trainer.predict_loop.return_predictions = False

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        if not self._active:
            return
        probs = self._probabilities(prediction)
        indices = [int(i) for i in batch_indices or []]
        if not indices:
            raise RuntimeError("Lightning passed no dataset indices for this predict batch (the loader has no "
                               "batch sampler it could track); PredictionsCSV cannot name the images")
        if len(indices) != probs.shape[0]:
            self.skipped += len(indices) - probs.shape[0]
            indices = kept_indices(self._dataset, indices, probs.shape[0])
        for row in self._rows(indices, probs):
            self._writer.writerow(row)
        self.rows += len(indices)

    def _probabilities(self, prediction: Any) -> Tensor:
        """The batch's (N, num_classes) probabilities, or an error naming what came instead."""
        if not isinstance(prediction, Tensor) or prediction.ndim != 2 or prediction.shape[1] != self._num_classes:
            shape = tuple(prediction.shape) if isinstance(prediction, Tensor) else type(prediction).__name__
            raise RuntimeError(f"PredictionsCSV expects predict_step to return (N, {self._num_classes}) "
                               f"class probabilities; got {shape}")
        return prediction.detach()

    def _rows(self, indices: Sequence[int], probs: Tensor) -> Iterator[list[Any]]:
        """One CSV row per image: index, name, then (class, probability) pairs, most probable first."""
        values, classes = probs.float().topk(min(self.top_k, self._num_classes), dim=1)
        for index, p, c in zip(indices, values.cpu().tolist(), classes.cpu().tolist()):
            labels = [self._classes[j] for j in c] if self._classes is not None else c
            pairs = [x for label, prob in zip(labels, p) for x in (label, f"{prob:.6f}")]
            yield [index, item_name(self._dataset, index, self.split), *pairs]

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        self._close()
        rows = self.rows
        if trainer.world_size > 1:
            trainer.strategy.barrier()  # every rank's part is complete before rank 0 reads it
            rows = self._merge(trainer)
        if trainer.is_global_zero and rows is not None:
            print(f"wrote {rows} prediction row(s) to {self.path}")
        if self.skipped:  # per rank: each rank skipped its own images
            warnings.warn(f"{self.skipped} corrupt image(s) were skipped and have no row in {self.path}",
                          stacklevel=2)

    def _merge(self, trainer: L.Trainer) -> Optional[int]:
        """Rank 0 merges the per-rank parts; None on other ranks or when a part is not visible."""
        if not trainer.is_global_zero:
            return None
        parts = [self.rank_path(self.path, r) for r in range(trainer.world_size)]
        missing = [p for p in parts if not p.is_file()]
        if missing:
            rank_zero_warn(f"cannot merge predictions: {', '.join(map(str, missing))} not visible from rank 0 "
                           f"(no shared log folder?); every rank's part stays beside {self.path}")
            return None
        return merge_rank_files(parts, self.path)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._close()  # a predict that failed mid-way still closes its file
