"""Keep freed memory in the process instead of handing it back to the OS after every step.

A CPU training step frees and reallocates the same few hundred megabytes of
activations and gradients each time. glibc's malloc returns big blocks to the
OS on free (mmap'd chunks, and a trimmed heap top), so every step page-faults
that memory in again and pays for it in system time, a share of every step's
wall time (benchmarks/RESULTS.md has the figures for a ResNet-50 step). Raising
glibc's mmap and trim thresholds keeps those pages for reuse: the same effect
as PyTorch's CPU tuning guide gets from preloading jemalloc or tcmalloc, with
no extra library.

The cost is that the process keeps its peak heap until it exits. recal's CLI
does this for its runs; ``RECAL_MALLOC=default`` leaves glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP = 1 << 30  # blocks up to 1 GiB come from the reusable heap; the heap top is never trimmed


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse. True when the setting took effect.

    A no-op (False) off Linux, with another C library, or with ``RECAL_MALLOC=default``.
    """
    if os.environ.get("RECAL_MALLOC") == "default" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
