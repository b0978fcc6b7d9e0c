"""The fast paths of the recalibration modules, and the switch for compiled kernels.

The readable definitions live in :mod:`recal.models.pooling` and
:mod:`recal.models.gate`. Here: the end of a gated block as one autograd node
(:mod:`~recal.models.functional.pooled_gate` for SRM, SE and ECA, with the
block's BatchNorm folded in; :mod:`~recal.models.functional.gated_residual`
for the others), and ``torch.compile`` kernels for their full-size passes. See
:mod:`recal.models.functional.dispatch` for when kernels are compiled.
"""

from recal.models.functional.dispatch import compiled_kernels, fast_kernel, kernels_enabled, set_kernels

__all__ = ["compiled_kernels", "fast_kernel", "kernels_enabled", "set_kernels"]
