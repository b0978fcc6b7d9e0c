"""The reference formulations recal is measured against, written as their authors did.

- SRM: the official ``SRMLayer``, in benchmarks/official_srm.py (the tests compare recal with it too).
- SE: timm's ``SEModule`` formulation (1×1 convolutions on the pooled map).
- GE: the official SRM repo's ``GELayer`` (depthwise H×W conv + BN + sigmoid + multiply).
"""

from __future__ import annotations

from torch import Tensor, nn


class TimmSE(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.fc2(self.act(self.fc1(s))).sigmoid()


class OfficialGE(nn.Module):
    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, spatial, groups=channels), nn.BatchNorm2d(channels))
        self.activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.activation(self.conv(x))
