"""The task option that decides whether a fit uses recal's compiled kernels."""

from __future__ import annotations

import math
from typing import Literal

from lightning.pytorch.utilities import rank_zero_info

from recal.layers.kernels import set_kernels
from recal.layers.kernels.dispatch import compile_available

KernelChoice = Literal["auto", "compiled", "eager"]
AUTO_MIN_STEPS = 2000


def choose_kernels(choice: KernelChoice, steps: float, device_type: str) -> str:
    """Switch compiled kernels on or off for this fit and return the mode used.

    ``auto`` compiles only when the fit is long (≥ 2,000 optimiser steps: one compile
    per model and set of shapes outlasts a short fit, benchmarks/RESULTS.md) and a
    compiler toolchain is present, so tests and quick runs never wait for a compile.
    """
    if choice == "auto":
        long_fit = math.isinf(steps) or steps >= AUTO_MIN_STEPS
        choice = "compiled" if long_fit and compile_available(device_type) else "eager"
    set_kernels(choice)
    rank_zero_info(f"recal kernels: {choice}")
    return choice
