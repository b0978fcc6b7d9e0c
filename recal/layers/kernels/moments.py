"""Per-channel mean and variance over H×W: the statistics SRM pools and the training node reuses.

Numerics (as the official SRM code): std = sqrt(var + 1e-5) with the unbiased variance
(divisor HW - 1). A 1×1 map has no unbiased variance (0/0); it is defined as 0 here, so its
std is sqrt(1e-5) rather than NaN. Statistics are computed in float32 (float64 for float64
inputs), also under autocast: a bf16 variance of activations with large means loses every
significant digit.
"""

from __future__ import annotations

import torch
from torch import Tensor

STD_EPS = 1e-5


def statistics_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def mean_var(flat: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Mean and unbiased variance over the last dim of (N, C, L), in ``dtype`` (default: flat's).

    The variance of one value is 0.

    Shifted sums: Σd and Σd² of d = x − x₀, with x₀ each row's first value, give
    mean = x₀ + Σd/L and var = (Σd² − (Σd)²/L) / (L − 1) in one pass. The shift
    keeps Σd² from cancelling when a row's mean is large against its spread (the
    textbook shifted-data algorithm). ``torch.var_mean``'s Welford pass measured
    slower, compiled and eager (benchmarks/RESULTS.md). A bf16 map's differences are
    formed in ``dtype`` straight from it, without a full-size ``dtype`` copy first.
    """
    length = flat.shape[-1]
    shift = flat[..., :1].to(dtype or flat.dtype)
    if length == 1:
        return shift[..., 0], torch.zeros_like(shift[..., 0])
    d = flat - shift  # in shift's dtype, by type promotion
    s1, s2 = d.sum(-1), (d * d).sum(-1)
    return shift[..., 0] + s1 / length, (s2 - s1 * s1 / length) / (length - 1)
