"""Which of recal's fused autograd nodes run on which device type.

Three steps of a block in training have a hand-written autograd node that computes what
the plain composition (autograd through the readable definitions) computes, in fewer
full-size passes:

- ``pooled_block_end``: the end of an SRM, SE or ECA block — BatchNorm, statistics, gate,
  rescale, addition, ReLU — as one node (:mod:`recal.layers.kernels.pooled_block_end`);
- ``gated_add``: rescale, addition and ReLU of the other gates' blocks
  (:mod:`recal.layers.kernels.gated_add`);
- ``global_dot``: GE's global gather with a backward in the input's own layout
  (:mod:`recal.layers.kernels.global_dot`).

Fewer passes need not be faster on every device (a node trades passes for small kernel
launches and a Python backward), so each node runs only on the device types listed here:

- ``cpu``: all three, measured faster than the plain composition in float32 and under bf16
  autocast, contiguous and channels_last (benchmarks/RESULTS.md);
- ``cuda``: all three, on the same count of passes, which decides the time of these
  bandwidth-bound steps on a GPU as on a CPU — not yet measured on a GPU: the GPU suite
  (benchmarks/gpu_suite.py) times every node against the plain composition on CUDA and
  prints what this table should hold;
- every other device type (``mps``, ``xpu``, …): none, never measured.

:func:`set_fused_paths` changes the table for a process (``set_fused_paths("cuda", [])``
runs the plain composition on GPUs).
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

PATHS: tuple[str, ...] = ("pooled_block_end", "gated_add", "global_dot")

_fused: dict[str, frozenset[str]] = {"cpu": frozenset(PATHS), "cuda": frozenset(PATHS)}


def runs_fused(path: str, device_type: str) -> bool:
    """Whether ``path``'s fused node runs on tensors of ``device_type`` (``tensor.device.type``)."""
    return path in _fused.get(device_type, frozenset())


def fused_paths(device_type: str) -> frozenset[str]:
    """The paths whose fused node runs on ``device_type``."""
    return _fused.get(device_type, frozenset())


def set_fused_paths(device_type: str, paths: Iterable[str]) -> None:
    """Run exactly ``paths``' fused nodes on ``device_type`` from now on (the others: the plain composition)."""
    chosen = frozenset(paths)
    unknown = sorted(chosen - set(PATHS))
    if unknown:
        from recal.errors import InvalidOptionError

        raise InvalidOptionError(f"unknown fused path {unknown[0]!r}; valid choices: {list(PATHS)}")
    _fused[device_type] = chosen


@contextlib.contextmanager
def using_fused_paths(device_type: str, paths: Iterable[str]) -> Iterator[None]:
    """Run exactly ``paths``' fused nodes on ``device_type`` inside this block."""
    previous = _fused.get(device_type)
    set_fused_paths(device_type, paths)
    try:
        yield
    finally:
        if previous is None:
            del _fused[device_type]
        else:
            _fused[device_type] = previous
