"""Style pooling: per-channel statistics of a feature map over H×W.

This is the squeeze (SE's word) or style pooling (SRM's) of the recalibration
modules: SRM pools mean and standard deviation (Lee et al., ICCV 2019), SE pools the
mean only, and the pooling ablation of the SRM paper swaps in max pooling. A pooling is a set over
``{"avg", "std", "max"}`` kept in the canonical order avg, std, max so that a
config written ``[std, avg]`` builds the same model as ``[avg, std]``.

Numerics (std = sqrt(var + 1e-5) with the unbiased variance, a 1×1 map's variance
defined as 0, statistics in float32 also under autocast): see
:mod:`recal.layers.kernels.moments`.
"""

from __future__ import annotations

from typing import Iterable, Literal, get_args

import torch
from torch import Tensor

from recal.errors import InvalidOptionError
from recal.layers.kernels.dispatch import fast_kernel
from recal.layers.kernels.moments import STD_EPS, mean_var, statistics_dtype

PoolingName = Literal["avg", "std", "max"]
POOLING_NAMES: tuple[str, ...] = get_args(PoolingName)


def canonical_pooling(pooling: Iterable[str] | str) -> tuple[str, ...]:
    """Validate a pooling set and return it in canonical order (avg, std, max).

    Raises :class:`InvalidOptionError` for an empty set, a duplicate or an
    unknown name, naming the bad value and the valid choices.
    """
    names = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    unknown = [name for name in names if name not in POOLING_NAMES]
    if unknown:
        raise InvalidOptionError(
            f"unknown pooling {unknown[0]!r} in {list(names)}; valid choices: {list(POOLING_NAMES)}"
        )
    if not names:
        raise InvalidOptionError(f"pooling must name at least one of {list(POOLING_NAMES)}, got []")
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"pooling {list(names)} names a statistic twice; each of {list(POOLING_NAMES)} at most once")
    return tuple(name for name in POOLING_NAMES if name in names)


@fast_kernel
def style_pool(x: Tensor, pooling: tuple[str, ...] = ("avg", "std")) -> Tensor:
    """Pool an (N, C, H, W) map into (N, C, d) statistics, d = len(pooling).

    ``pooling`` must already be canonical (see :func:`canonical_pooling`); the
    returned statistics are float32 (float64 for float64 input) whatever the
    autocast state.
    """
    n, c, h, w = x.shape
    flat, dtype = x.reshape(n, c, h * w), statistics_dtype(x)
    with torch.autocast(device_type=x.device.type, enabled=False):
        stats = []
        if "std" in pooling:
            mean, var = mean_var(flat, dtype)
            if "avg" in pooling:
                stats.append(mean)
            stats.append(torch.sqrt(var + STD_EPS))
        elif "avg" in pooling:
            stats.append(flat.mean(dim=2, dtype=dtype))
        if "max" in pooling:
            stats.append(flat.amax(dim=2).to(dtype))  # a maximum is exact in any dtype
        return torch.stack(stats, dim=2)
