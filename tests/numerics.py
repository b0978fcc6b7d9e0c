"""How the fast-path tests measure agreement with a readable reference."""

from __future__ import annotations

from torch import Tensor


def relative_difference(a: Tensor, b: Tensor) -> float:
    """Max abs difference relative to the reference's scale. A gradient that is zero in exact
    arithmetic (a bias followed by train-mode BatchNorm) is rounding noise on both sides:
    measure it against 1 instead."""
    scale = b.abs().max()
    noise = 1e-9 if b.dtype.itemsize == 8 else 1e-4
    return ((a - b).abs().max() / (scale if scale > noise else 1.0)).item()
