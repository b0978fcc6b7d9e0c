"""Fast kernels for the recalibration modules, and the switch that turns them on.

The readable definitions live in :mod:`recal.models.pooling` and
:mod:`recal.models.gate`; the kernels here compute the same functions with
``torch.compile`` (inductor fuses the statistics' single pass and the rescaling
with their backward passes, which eager PyTorch runs as several full-size
passes). See :mod:`recal.models.functional.dispatch` for when they are used.
"""

from recal.models.functional.dispatch import compiled_kernels, fast_kernel, kernels_enabled, set_kernels

__all__ = ["compiled_kernels", "fast_kernel", "kernels_enabled", "set_kernels"]
