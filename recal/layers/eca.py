"""ECA: Efficient Channel Attention (an extra beside the SRM paper's modules).

Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020. Global average pooling → 1-D convolution across channels
(kernel k, no bias) → sigmoid. k is adaptive: the nearest odd number to
(log2(C) + 1) / 2, as in the official code (gamma = 2, b = 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from recal.layers.gate import PooledGate


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The ECA paper's adaptive kernel size for ``channels`` channels."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(PooledGate):
    """Efficient channel attention: sigmoid(conv1d_k(mean(x)))."""

    def __init__(self, channels: int, kernel_size: int | None = None) -> None:
        super().__init__(channels)
        self.pooling = ("avg",)
        k = kernel_size or eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)

    def excite(self, t: Tensor) -> Tensor:
        return torch.sigmoid(self.conv(t.transpose(1, 2)).squeeze(1))

    def score_layer(self) -> nn.Module:
        return self.conv
