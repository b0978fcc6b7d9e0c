"""The fast paths of the layers, and the switches for compiled kernels and the readable mode.

The readable definitions live in :mod:`recal.layers.pooling`, :mod:`recal.layers.gate` and
:func:`recal.layers.block_end.block_end_reference`. Here: the end of a gated block as one autograd
node (:mod:`~recal.layers.kernels.pooled_block_end` for SRM, SE and ECA, with the block's
BatchNorm absorbed; :mod:`~recal.layers.kernels.gated_add` for the others), GE's global gather
(:mod:`~recal.layers.kernels.global_dot`), the per-channel moments, and ``torch.compile`` kernels
for their full-size passes (:mod:`recal.layers.kernels.dispatch` says when they are compiled).
:mod:`recal.layers.kernels.fused_paths` says on which device types each fused node runs.
"""

from recal.layers.kernels.dispatch import (compiled_kernels, fast_kernel, is_readable, kernels_enabled,
                                           readable_mode, set_kernels)
from recal.layers.kernels.fused_paths import fused_paths, runs_fused, set_fused_paths, using_fused_paths

__all__ = ["compiled_kernels", "fast_kernel", "fused_paths", "is_readable", "kernels_enabled", "readable_mode",
           "runs_fused", "set_fused_paths", "set_kernels", "using_fused_paths"]
