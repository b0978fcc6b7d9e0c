"""The reference formulations recal is measured against, written as their authors did.

- SRM: the official ``SRMLayer`` (hyunjaelee410/style-based-recalibration-module).
- SE: timm's ``SEModule`` formulation (1×1 convolutions on the pooled map).
- GE: the official SRM repo's ``GELayer`` (depthwise H×W conv + BN + sigmoid + multiply).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class OfficialSRM(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.cfc = nn.Parameter(torch.zeros(channels, 2))
        self.bn = nn.BatchNorm2d(channels)
        self.activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        n, c, _, _ = x.size()
        mean = x.view(n, c, -1).mean(dim=2, keepdim=True)
        std = (x.view(n, c, -1).var(dim=2, keepdim=True) + 1e-5).sqrt()
        t = torch.cat((mean, std), dim=2)
        z = torch.sum(t * self.cfc[None, :, :], dim=2)[:, :, None, None]
        return x * self.activation(self.bn(z))


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
