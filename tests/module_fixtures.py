"""Shared setup of the layer and network tests: one thread, a fixed seed per test and a parameter randomiser."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The model tests run many tiny ops. On our 2 shared cores, two intra-op threads
    # wait on each other whenever another process holds a core: a ResNet-50 forward
    # at 32 px took 2-3 s with 2 threads and 0.03 s with 1 (even 224 px was faster).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _randomize(module: nn.Module, scale: float = 0.5) -> nn.Module:
    """Overwrite every parameter and BN running statistic with random values.

    Freshly initialised gates are degenerate (SRM's CFC is zero, so every gate
    is 0.5); tests that compare formulations or check masking need parameters
    that make each channel's gate different.
    """
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * scale)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * scale)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    return module


@pytest.fixture
def randomize() -> Callable[..., nn.Module]:
    return _randomize
