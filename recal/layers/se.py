"""SE: Squeeze-and-Excitation.

Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018 / TPAMI 2019.
Global average pooling → FC C→C/r (bias) → ReLU → FC C/r→C (bias) → sigmoid,
r = 16. ``bias=False`` drops both biases (the SE paper's ablations); the FCs are
1×1-equivalent Linear layers, as in the official Caffe prototxts' InnerProduct.
Same as timm's SEModule with ``rd_ratio=1/16`` except that the hidden width is
``C // r`` without rounding to a multiple of 8 (the papers' parameter counts).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recal.layers.gate import PooledGate


class SE(PooledGate):
    """Squeeze-and-excitation gate: sigmoid(FC(ReLU(FC(mean(x)))))."""

    user_options = ("reduction", "bias")

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True) -> None:
        super().__init__(channels)
        self.pooling = ("avg",)
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)

    def excite(self, t: Tensor) -> Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(t[:, :, 0]))))

    def score_layer(self) -> nn.Module:
        return self.fc2
