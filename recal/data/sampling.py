"""Sample order and per-sample augmentation seeds that depend only on (seed, epoch, index).

Exact resume and DDP both need a training run whose randomness is a pure function of the
configuration: which samples an epoch visits, in which order, on which rank, and how each one
is augmented. :class:`EpochSeededSampler` gives the order (the same permutation as
``torch.utils.data.DistributedSampler``) and tags every index with its epoch;
:class:`SeededTransformDataset` turns the tag into a seed for the random transform, so
augmentation is the same whatever the worker count and whether training was resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from recal.errors import InvalidOptionError

__all__ = ["EpochSeededSampler", "SeededTransformDataset", "sample_seed"]


class EpochSeededSampler(DistributedSampler):
    """A ``DistributedSampler`` that yields ``(epoch, index)`` pairs.

    The permutation is exactly ``DistributedSampler``'s (seeded by ``seed + epoch``, rank ``r``
    takes every ``num_replicas``-th index from position ``r``), and ``num_replicas`` / ``rank``
    are always given explicitly, so no process group is needed for one process. Subclassing
    ``DistributedSampler`` matters: Lightning only injects its own sampler under DDP when the
    loader's sampler is *not* one, and it calls :meth:`set_epoch` on it every epoch.

    ``interleave_ranks=R`` (one process only, needs ``batch_size``) reproduces what ``R`` DDP
    ranks with per-rank batch size ``B`` would see, micro-batch by micro-batch: micro-batch
    ``R*k + r`` is rank ``r``'s batch ``k``. Only full per-rank batches are kept (the training
    loader drops the last partial batch anyway), so a one-process run with
    ``accumulate_grad_batches=R`` steps on exactly the samples of an R-rank DDP step.
    """

    def __init__(
        self,
        dataset: Sized | int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        interleave_ranks: int = 1,
        batch_size: int | None = None,
    ) -> None:
        if isinstance(dataset, int):
            dataset = range(dataset)
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        if interleave_ranks < 1:
            raise InvalidOptionError(f"interleave_ranks={interleave_ranks}; expected an integer >= 1")
        if interleave_ranks > 1:
            if num_replicas != 1:
                raise InvalidOptionError(
                    f"interleave_ranks={interleave_ranks} emulates several ranks in one process, but "
                    f"this sampler already runs on {num_replicas} replicas; use one or the other")
            if batch_size is None or batch_size < 1:
                raise InvalidOptionError(
                    f"interleave_ranks={interleave_ranks} needs the per-rank batch_size (got {batch_size})")
        self.interleave_ranks = interleave_ranks
        self.batch_size = batch_size
        self._resume: tuple[int, int] | None = None  # (epoch, samples already consumed)

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """Continue ``epoch`` after its first ``samples_done`` samples (a mid-epoch resume)."""
        self.set_epoch(epoch)
        self._resume = (epoch, samples_done)

    def _rank_samplers(self) -> list[DistributedSampler]:
        samplers = [DistributedSampler(self.dataset, num_replicas=self.interleave_ranks, rank=r,
                                       shuffle=self.shuffle, seed=self.seed, drop_last=self.drop_last)
                    for r in range(self.interleave_ranks)]
        for sampler in samplers:
            sampler.set_epoch(self.epoch)
        return samplers

    def indices(self) -> list[int]:
        """The dataset indices of the current epoch, in the order they are yielded."""
        if self.interleave_ranks == 1:
            return list(super().__iter__())
        per_rank = [list(s) for s in self._rank_samplers()]
        b = self.batch_size
        order: list[int] = []
        for k in range(len(per_rank[0]) // b):
            for rank_indices in per_rank:
                order.extend(rank_indices[k * b:(k + 1) * b])
        return order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        indices = self.indices()
        if self._resume is not None and self._resume[0] == epoch:
            indices = indices[self._resume[1]:]
        self._resume = None
        return iter([(epoch, i) for i in indices])

    def __len__(self) -> int:
        if self.interleave_ranks == 1:
            return self.num_samples
        per_rank = self._rank_samplers()[0].num_samples
        return (per_rank // self.batch_size) * self.batch_size * self.interleave_ranks


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample's augmentation, a hash of (seed, epoch, index).

    NumPy's ``SeedSequence`` mixes the three numbers so that neighbouring indices and epochs
    give unrelated streams (``seed + epoch * n + index`` would make sample i of epoch e+1 reuse
    the stream of another sample). Negative seeds are taken modulo 2**64.
    """
    entropy = [seed % 2**64, epoch, index]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class SeededTransformDataset(Dataset):
    """Applies ``transform`` to ``dataset``'s ``(image, target)`` items, seeded per sample.

    Indexed with an ``(epoch, index)`` pair (what :class:`EpochSeededSampler` yields), the
    transform runs inside ``torch.random.fork_rng`` after
    ``torch.manual_seed(sample_seed(seed, epoch, index))``: torchvision's ``transforms.v2``
    draw from torch's global CPU generator, so this makes the augmentation a pure function of
    (seed, epoch, index) in any worker, and leaves the caller's RNG state untouched. Indexed
    with a plain int (validation, test), the transform runs unseeded; evaluation transforms
    are deterministic. An item that is ``None`` (a skipped corrupt image) passes through.
    """

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Any] | None, seed: int = 0) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any] | None:
        epoch = None
        if isinstance(key, tuple):
            epoch, index = int(key[0]), int(key[1])
        else:
            index = int(key)
        item = self.dataset[index]
        if item is None or self.transform is None:
            return item
        image, target = item
        if epoch is None:
            return self.apply(image, target)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.apply(image, target)

    def apply(self, image: Any, target: Any) -> tuple[Any, Any]:
        """The transformed item: the image transformed, the target as it is."""
        return self.transform(image), target


class SeededJointTransformDataset(SeededTransformDataset):
    """A :class:`SeededTransformDataset` whose ``transform(image, target)`` moves both together
    (boxes or masks with their image: detection and segmentation), seeded the same way."""

    def apply(self, image: Any, target: Any) -> tuple[Any, Any]:
        return self.transform(image, target)
