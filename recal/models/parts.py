"""Small shared pieces of the backbones: conv helpers, the block context a gate
factory receives, and the output-size arithmetic that sizes GE's global kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from torch import Tensor, nn

from recal.layers.gate import ChannelGate


@dataclass(frozen=True)
class BlockContext:
    """What a gate factory may need to know about the block it is placed in.

    ``channels``: the gated (residual output) channels; ``inner_channels``: the
    width of the block's inner convolutions (CMPE-SE's m = inner / 16);
    ``spatial_size``: the gated map's side at the backbone's ``input_size`` (GE's
    global kernel); ``fold``: channels per row of CMPE-SE's folded image.
    """

    channels: int
    inner_channels: int
    spatial_size: int | None
    fold: int = 16


class GateFactory(Protocol):
    def __call__(self, context: BlockContext) -> nn.Module: ...


ConvFactory = Callable[[int, int, int, int], nn.Module]
"""(in_ch, out_ch, stride, groups) → a 3×3 conv replacement that includes its BN and ReLU."""


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3×3 convolution with padding, no bias (BatchNorm follows)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution, no bias (BatchNorm follows)."""
    return nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)


def conv_out(size: int | None, kernel: int, stride: int, padding: int) -> int | None:
    """Output side of a convolution or pooling (floor mode) on a ``size`` input."""
    return None if size is None else (size + 2 * padding - kernel) // stride + 1


def gated_residual(gate: nn.Module, out: Tensor, identity: Tensor, relu: bool, norm: nn.Module | None = None) -> Tensor:
    """``relu?(gate(norm(out)) + identity)`` — the end of a recalibrated residual block.

    Gates that read the shortcut get it too; the gate module itself applies the
    BatchNorm ``norm``, adds the residual and applies the ReLU, so that it can
    fold them into its rescale (SRM, SE and ECA do in training). A wrapper that
    is not a gate module itself (per-domain gate copies, which split the batch)
    gets the normalised map: BatchNorm must see the whole batch; so do gates
    that have nothing to fold it into (``folds_norm`` False).
    """
    if norm is not None and not (isinstance(gate, ChannelGate) and gate.folds_norm):
        out, norm = norm(out), None
    shortcut = identity if getattr(gate, "takes_shortcut", False) else None
    if norm is None:
        return gate(out, shortcut, residual=identity, relu=relu)
    return gate(out, shortcut, residual=identity, relu=relu, norm=norm)
