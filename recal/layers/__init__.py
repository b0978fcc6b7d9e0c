"""recal's layers: the recalibration modules a user plugs into any network, and their fast kernels.

Gate modules (``gate_module(x)`` returns ``x * gate * channel_mask``; CMPE-SE also reads the
block's shortcut, ``gate_module(x, shortcut)``): :class:`SRM`, :class:`SE`, :class:`ECA`,
:class:`GatherExcite`, :class:`CMPESE`, :class:`CBAM` (which then also applies a spatial gate),
all derived from :class:`ChannelGate`. Conv replacements for a bottleneck's 3×3:
:class:`SelectiveKernelConv`, :class:`SplitAttentionConv`. The end of a residual block with a
gate, written once: :func:`block_end`. Ghost BatchNorm (batch statistics per group of images,
as DataParallel's replicas computed them): :class:`GhostBatchNorm1d`, :class:`GhostBatchNorm2d`,
:func:`use_ghost_batch_norm`. Networks live in :mod:`recal.models`.
"""

from recal.layers.block_end import block_end, block_end_reference
from recal.layers.cbam import CBAM
from recal.layers.cmpe_se import CMPESE
from recal.layers.eca import ECA
from recal.layers.gate import ChannelGate, PooledGate
from recal.layers.kernels import readable_mode, set_kernels
from recal.layers.ge import GatherExcite
from recal.layers.ghost_norm import GhostBatchNorm1d, GhostBatchNorm2d, use_ghost_batch_norm
from recal.layers.pooling import canonical_pooling, style_pool
from recal.layers.se import SE
from recal.layers.sk import SelectiveKernelConv
from recal.layers.splat import SplitAttentionConv
from recal.layers.srm import SRM

__all__ = [
    "CBAM",
    "CMPESE",
    "ECA",
    "SE",
    "SRM",
    "ChannelGate",
    "GatherExcite",
    "GhostBatchNorm1d",
    "GhostBatchNorm2d",
    "PooledGate",
    "SelectiveKernelConv",
    "SplitAttentionConv",
    "block_end",
    "block_end_reference",
    "canonical_pooling",
    "readable_mode",
    "set_kernels",
    "style_pool",
    "use_ghost_batch_norm",
]
