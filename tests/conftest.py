"""Shared pytest setup: the repository root on sys.path, and a one-thread fixture."""

import sys
from typing import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of many tiny models (use with ``pytestmark``).

    On our shared 2-core machines two threads spin against other processes; tiny models
    run several times faster on one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
