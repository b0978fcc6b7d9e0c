"""SK: Selective Kernel convolution.

Li, Wang, Hu & Yang, "Selective Kernel Networks", CVPR 2019. Official code:
implus/SKNet (Caffe). A conv replacement for the 3×3 of a bottleneck, built as
``SelectiveKernelConv(in_ch, out_ch, stride, groups)``; it includes its own
BatchNorm and ReLU.

Two branches — 3×3 grouped conv and 3×3 dilation-2 grouped conv (G = 32), each
BN + ReLU — are summed, globally average-pooled, reduced by FC C→d
(d = max(C/16, 32), no bias) → BN → ReLU, expanded by FC d→2C (no bias), and a
softmax over the two branches weighs their sum. In a dilated stage
(``replace_stride_with_dilation``) the branches are dilated d and 2d, as timm's
``SelectiveKernel`` scales them. SKNet-50 (ResNeXt-50 32×4d with
SK in place of every 3×3) has 27,479,784 parameters (paper: 27.5M). Not a gate
module: it has no (N, C) gate and no ``channel_mask``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _branch(in_ch: int, out_ch: int, stride: int, groups: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SelectiveKernelConv(nn.Module):
    """Two-branch selective-kernel 3×3 convolution with softmax attention over branches."""

    user_options = ("reduction",)

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, groups: int = 32, reduction: int = 16, min_dim: int = 32,
                 dilation: int = 1) -> None:
        super().__init__()
        d = max(out_ch // reduction, min_dim)
        self.branches = nn.ModuleList([_branch(in_ch, out_ch, stride, groups, dilation * k) for k in (1, 2)])
        self.fc_reduce = nn.Sequential(nn.Linear(out_ch, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(inplace=True))
        self.fc_select = nn.Linear(d, 2 * out_ch, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        feats = torch.stack([branch(x) for branch in self.branches], dim=1)  # (N, 2, C, H, W)
        z = self.fc_reduce(feats.sum(dim=1).mean(dim=(2, 3)))
        attention = self.fc_select(z).view(x.shape[0], 2, -1).softmax(dim=1)
        return (feats * attention[:, :, :, None, None]).sum(dim=1)
