"""EpochSeededSampler and SeededTransformDataset: order and augmentation from (seed, epoch, index)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.transforms import v2

from recal.data.sampling import EpochSeededSampler, SeededTransformDataset, sample_seed
from recal.errors import InvalidOptionError


def indices(sampler: EpochSeededSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    pairs = list(sampler)
    assert all(e == epoch for e, _ in pairs)
    return [i for _, i in pairs]


def test_same_seed_and_epoch_give_the_same_order():
    a, b = EpochSeededSampler(100, seed=3), EpochSeededSampler(100, seed=3)
    assert indices(a, 2) == indices(b, 2)
    assert sorted(indices(a, 2)) == list(range(100))


def test_epochs_and_seeds_change_the_order():
    s = EpochSeededSampler(100, seed=3)
    assert indices(s, 0) != indices(s, 1)
    assert indices(s, 0) != indices(EpochSeededSampler(100, seed=4), 0)


def test_order_is_exactly_distributed_samplers():
    for rank in range(3):
        ours = EpochSeededSampler(50, num_replicas=3, rank=rank, seed=7, drop_last=True)
        theirs = DistributedSampler(range(50), num_replicas=3, rank=rank, seed=7, drop_last=True)
        theirs.set_epoch(5)
        assert indices(ours, 5) == list(theirs)
        assert len(ours) == len(theirs) == 16


def test_unshuffled_sampler_keeps_dataset_order():
    assert indices(EpochSeededSampler(10, shuffle=False), 3) == list(range(10))


@pytest.mark.parametrize("drop_last", [True, False])
def test_ranks_partition_the_epoch(drop_last):
    n, world = 101, 4
    parts = [indices(EpochSeededSampler(n, num_replicas=world, rank=r, seed=1, drop_last=drop_last), 2)
             for r in range(world)]
    assert len({len(p) for p in parts}) == 1  # every rank steps the same number of times
    flat = [i for p in parts for i in p]
    if drop_last:
        assert len(flat) == len(set(flat)) == 100  # disjoint; the one left over is dropped
    else:
        assert set(flat) == set(range(n))  # covering; 3 indices padded by repetition
        assert len(flat) == 104


def full_batches(order: list[int], batch: int) -> list[list[int]]:
    return [order[k:k + batch] for k in range(0, len(order) - batch + 1, batch)]


def test_interleave_reproduces_ddp_micro_batches():
    n, ranks, batch = 45, 2, 4
    ddp = [EpochSeededSampler(n, num_replicas=ranks, rank=r, seed=9, drop_last=True) for r in range(ranks)]
    one = EpochSeededSampler(n, seed=9, drop_last=True, interleave_ranks=ranks, batch_size=batch)
    for epoch in (0, 1):
        per_rank = [full_batches(indices(s, epoch), batch) for s in ddp]
        order = indices(one, epoch)
        micro = full_batches(order, batch)
        assert len(one) == len(order) == 2 * 5 * 4  # 22 per rank -> 5 full batches each
        assert micro[0::2] == per_rank[0] and micro[1::2] == per_rank[1]


def test_interleave_options_are_checked():
    with pytest.raises(InvalidOptionError, match="batch_size"):
        EpochSeededSampler(10, interleave_ranks=2)
    with pytest.raises(InvalidOptionError, match="replicas"):
        EpochSeededSampler(10, num_replicas=2, rank=0, interleave_ranks=2, batch_size=2)


class RandomImages(torch.utils.data.Dataset):
    def __init__(self, n: int = 12) -> None:
        self.images = torch.randint(0, 256, (n, 3, 12, 12), generator=torch.Generator().manual_seed(0),
                                    dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], i


AUGMENT = v2.Compose([v2.RandomResizedCrop(8, antialias=True), v2.RandomHorizontalFlip(),
                      v2.ColorJitter(0.5, 0.5), v2.ToDtype(torch.float32, scale=True)])


def test_augmentation_is_a_function_of_seed_epoch_and_index():
    ds = SeededTransformDataset(RandomImages(), AUGMENT, seed=5)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    x, y = ds[(2, 7)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert y == 7
    torch.rand(10)  # whatever the global RNG does in between ...
    assert torch.equal(ds[(2, 7)][0], x)  # ... the same triple gives the same image
    assert not torch.equal(ds[(3, 7)][0], x)
    assert not torch.equal(SeededTransformDataset(RandomImages(), AUGMENT, seed=6)[(2, 7)][0], x)
    assert ds[7][0].shape == x.shape  # a plain index runs the transform unseeded


def test_sample_seeds_are_distinct_and_stable():
    seeds = {sample_seed(0, e, i) for e in range(5) for i in range(200)}
    assert len(seeds) == 1000
    assert sample_seed(0, 1, 2) == sample_seed(0, 1, 2) < 2**63
    assert sample_seed(-1, 0, 0) >= 0


def test_augmentation_does_not_depend_on_worker_count():
    ds = SeededTransformDataset(RandomImages(), AUGMENT, seed=5)

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochSeededSampler(len(ds), seed=1)
        sampler.set_epoch(3)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)
        return [x for x, _ in loader]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 3
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))
