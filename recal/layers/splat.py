"""Split attention (ResNeSt).

Zhang et al., "ResNeSt: Split-Attention Networks", CVPR-W 2022. Official code:
zhanghang1989/ResNeSt; parameter-exact with timm's ``SplitAttn``. A conv
replacement for the 3×3 of a bottleneck, built as
``SplitAttentionConv(in_ch, out_ch, stride, groups)``, including its BatchNorm
and ReLU, and (ResNeSt's "avd") a 3×3 average pool that carries the stride after
the convolution — or, with ``avd_first`` (the official ResNeSt-50-fast models), before it,
so that the split-attention convolution runs on the downsampled map.

radix 2, cardinality ``groups`` (1 in ResNeSt-50), reduction 4 with at least 32
attention channels (rounded to a multiple of 8 as the official code), rSoftMax
over the radix. ``dilation`` (a dilated stage, ``replace_stride_with_dilation``) dilates the
3×3 as the official code's ``dilation``. Not a gate module: no (N, C) gate and no ``channel_mask``.
"""

from __future__ import annotations

from torch import Tensor, nn


def _attention_channels(channels: int, radix: int, reduction: int, minimum: int = 32, divisor: int = 8) -> int:
    target = channels * radix / reduction
    rounded = max(minimum, int(target + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * target else rounded


class SplitAttentionConv(nn.Module):
    """Radix-split 3×3 convolution with softmax attention across the splits."""

    user_options = ("reduction",)
    architecture_options = ("avd_first",)  # set by a named architecture (ResNeSt-fast), not by users

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, radix: int = 2, reduction: int = 4,
                 avd: bool = True, avd_first: bool = False, dilation: int = 1) -> None:
        super().__init__()
        self.radix, self.avd_first = radix, avd_first
        conv_stride = 1 if avd else stride
        attn = _attention_channels(in_ch, radix, reduction)
        self.conv = nn.Conv2d(in_ch, out_ch * radix, 3, conv_stride, padding=dilation, dilation=dilation,
                              groups=groups * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(out_ch * radix)
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(out_ch, attn, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(attn)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn, out_ch * radix, 1, groups=groups)
        self.groups = groups
        self.avd = nn.AvgPool2d(3, stride, padding=1) if avd and stride > 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.avd_first:
            x = self.avd(x)
        x = self.act0(self.bn0(self.conv(x)))
        n, rc, h, w = x.shape
        splits = x.view(n, self.radix, rc // self.radix, h, w)
        gap = splits.sum(dim=1).mean(dim=(2, 3), keepdim=True)
        attn = self.fc2(self.act1(self.bn1(self.fc1(gap))))
        # rSoftMax: softmax over the radix within each cardinal group
        attn = attn.view(n, self.groups, self.radix, -1).transpose(1, 2).softmax(dim=1)
        attn = attn.reshape(n, self.radix, rc // self.radix, 1, 1)
        out = (splits * attn).sum(dim=1)
        return out if self.avd_first else self.avd(out)
