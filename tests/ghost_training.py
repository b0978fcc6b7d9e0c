"""A few SGD steps over seeded batches: one process with ghost BatchNorm, or one DDP rank of plain BatchNorm.

tests/test_ghost_batchnorm.py runs both sides from here. Launched as a rank
(``torchrun --nproc-per-node 2 -m tests.ghost_training OUT``), each process trains every
case of :data:`CASES` with ``DistributedDataParallel`` over gloo, rank r taking images
[r·k, (r+1)·k) of every global batch of 2k; rank 0 saves the final states to OUT.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recal.models import create_model
from tests.module_fixtures import _randomize

MODELS = ("srm_cifar_resnet20", "se_cifar_resnet20")
DTYPES = (torch.float64, torch.float32)
CASES = [(name, dtype) for name in MODELS for dtype in DTYPES]
GROUP = 4  # images per DDP rank = images per ghost BatchNorm group
RANKS = 2
STEPS = 3


def build(name: str, dtype: torch.dtype, bn_group_size: int | None = None) -> nn.Module:
    """The same network on every side: seeded, with random parameters (a fresh SRM's gates are all 0.5)."""
    torch.manual_seed(0)
    return _randomize(create_model(name, 10, bn_group_size=bn_group_size), scale=0.2).to(dtype).train()


def batches(dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:data:`STEPS` global batches of ``RANKS · GROUP`` images and labels, the same on every side."""
    generator = torch.Generator().manual_seed(1)
    size = RANKS * GROUP
    return [(torch.randn(size, 3, 32, 32, generator=generator).to(dtype), torch.randint(10, (size,), generator=generator))
            for _ in range(STEPS)]


def train(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]], images: slice = slice(None)
          ) -> dict[str, torch.Tensor]:
    """SGD with momentum and weight decay on ``images`` of each batch; the final state (weights and BN buffers)."""
    # lr 0.01: at 0.1 a float32 run's own rounding, amplified where ReLUs flip, reached 2e-4 in 3 steps
    # (float32 against float64 of one side alike), hiding what the float32 comparison is for
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    for x, y in data:
        optimizer.zero_grad()
        F.cross_entropy(model(x[images]), y[images]).backward()
        optimizer.step()
    trained = model.module if isinstance(model, DistributedDataParallel) else model
    return {key: value.detach().clone() for key, value in trained.state_dict().items()}


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference between two states, over every parameter and buffer."""
    assert a.keys() == b.keys()
    return max((a[key].double() - b[key].double()).abs().max().item() for key in a)


def run_rank(out: str) -> None:
    torch.set_num_threads(1)  # two ranks on a shared 2-core machine
    dist.init_process_group("gloo")  # rank, world size and the free port torchrun chose, from the environment
    rank = dist.get_rank()
    images = slice(rank * GROUP, (rank + 1) * GROUP)
    states = {}
    for name, dtype in CASES:
        # rank 0's buffers reach every rank at each forward (DDP's default; torch 2.14 deprecates the old name,
        # broadcast_buffers), so rank 0's running statistics are the ones that go on, as DataParallel kept GPU 0's
        model = DistributedDataParallel(build(name, dtype), forward_sync_buffers=True)
        states[(name, str(dtype))] = train(model, batches(dtype), images)
    if rank == 0:
        torch.save(states, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    run_rank(sys.argv[1])
