"""CMPE-SE: Competitive Squeeze-Excitation.

Hu, Wang & Yu (Yang Hu et al.), "Competitive Inner-Imaging Squeeze and
Excitation for Residual Network", 2018. Official MXNet code:
scut-aitcm/Competitive-Inner-Imaging-SENet.

Squeezes BOTH the residual output U and the shortcut (after its projection, when
there is one) by global average pooling, and builds ONE sigmoid gate that
multiplies U only: out = U · g + shortcut. No biases in the gate path;
reduction 16. Variants:

- ``double_fc``: GAP(U) → FC C→C/16 → ReLU and GAP(id) → its own FC → ReLU;
  concatenate (2C/16) → FC → C.
- ``pair_1x1``: stack the pooled vectors as a (1, C, 2) pseudo-image; m 1×1
  filters → BN → mean over the m maps → flatten 2C → FC 2C→C/16 → ReLU → FC → C.
- ``pair_2x1``: the same pseudo-image; m filters spanning the pair (1×2, valid)
  → BN → mean → C → FC C→C/16 → ReLU → FC → C.
- ``folded_3x3``: fold the (C, 2) pairs into a (2C/k, k) image whose rows
  alternate residual / identity per group of k channels (``row_width`` = k: ResNet
  k = 16 → (2C/16, 16); WRN k = C / widen factor → (2·widen, C/widen), the
  official (20, C/10) for WRN-28-10); 3×3 valid convolution with m filters → BN
  → mean → flatten → FC → C/16 → ReLU → FC → C.

m (the number of "inner-imaging" maps) is the block's inner width / 16 (the
official ResNet-164: 1, 2, 4; WRN-28-10: 10, 20, 40); backbones pass it.
Difference from the official code: its ResNet-164 has no projection on the
stage-1 shortcut where 16 channels become 64; our backbones always project there.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers.block_context import BlockContext
from recal.layers.gate import ChannelGate, rescale
from recal.layers.pooling import style_pool

CMPEVariant = Literal["double_fc", "pair_1x1", "pair_2x1", "folded_3x3"]
CMPE_VARIANTS = ("double_fc", "pair_1x1", "pair_2x1", "folded_3x3")


def checked_shortcut(x: Tensor, shortcut: Tensor) -> Tensor:
    """``shortcut``, after checking that it has the residual's shape."""
    if shortcut.shape != x.shape:
        raise InvalidOptionError(f"CMPE-SE residual {tuple(x.shape)} and shortcut {tuple(shortcut.shape)} differ; "
                                 "pass the shortcut after its projection")
    return shortcut


# leaves of traced graphs: the check is Python on shapes, and style_pool's dtype rule is too
torch.fx.wrap("checked_shortcut")
torch.fx.wrap("style_pool")


class InnerImaging(nn.Module):
    """Conv (m filters, no bias) → BN → mean over the m maps, on a 1-channel pseudo-image."""

    def __init__(self, maps: int, kernel_size: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, maps, kernel_size, bias=False)
        self.bn = nn.BatchNorm2d(maps)

    def forward(self, image: Tensor) -> Tensor:
        return self.bn(self.conv(image)).mean(dim=1)


class CMPESE(ChannelGate):
    """Competitive SE gate over the residual output and the shortcut."""

    takes_shortcut = True
    user_options = ("variant", "reduction")
    block_options = ("maps", "row_width")

    @classmethod
    def from_block(cls, context: BlockContext, **options: Any) -> "CMPESE":
        """m = the block's inner width / 16 maps; the folded image's rows as the block lays them out."""
        return cls(context.channels, maps=max(context.inner_channels // 16, 1), row_width=context.row_width,
                   **options)

    def __init__(
        self,
        channels: int,
        variant: CMPEVariant = "double_fc",
        maps: int = 1,
        row_width: int = 16,
        reduction: int = 16,
    ) -> None:
        super().__init__(channels)
        if variant not in CMPE_VARIANTS:
            raise InvalidOptionError(f"unknown CMPE-SE variant {variant!r}; valid choices: {list(CMPE_VARIANTS)}")
        if variant == "folded_3x3" and (channels % row_width or 2 * channels // row_width < 3 or row_width < 3):
            raise InvalidOptionError(
                f"CMPE-SE folded_3x3 lays {channels} channels out in rows of {row_width}: channels must be a "
                "multiple of the row width and the folded image at least 3×3"
            )
        self.variant, self.maps, self.row_width = variant, maps, row_width
        hidden = max(channels // reduction, 1)
        if variant == "double_fc":
            self.fc_residual = nn.Linear(channels, hidden, bias=False)
            self.fc_identity = nn.Linear(channels, hidden, bias=False)
            self.fc_out = nn.Linear(2 * hidden, channels, bias=False)
            return
        if variant == "pair_1x1":
            self.imaging, flat = InnerImaging(maps, (1, 1)), 2 * channels
        elif variant == "pair_2x1":
            self.imaging, flat = InnerImaging(maps, (1, 2)), channels
        else:
            self.imaging, flat = InnerImaging(maps, (3, 3)), (2 * channels // row_width - 2) * (row_width - 2)
        self.fc1 = nn.Linear(flat, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def pseudo_image(self, u: Tensor, s: Tensor) -> Tensor:
        """The (N, 1, H, W) image the inner-imaging convolution sees."""
        pairs = torch.stack((u, s), dim=2)  # (N, C, 2)
        if self.variant == "folded_3x3":
            rows, k = self.channels // self.row_width, self.row_width
            # rows alternate: residual channels [0, k), identity [0, k), residual [k, 2k), ...
            pairs = pairs.reshape(-1, rows, k, 2).transpose(2, 3).reshape(-1, 2 * rows, k)
        return pairs.unsqueeze(1)

    def forward(self, x: Tensor, shortcut: Tensor) -> Tensor:
        """``x * applied_gate(x, shortcut) * channel_mask``."""
        return rescale(x, self.scale(x, self.applied_gate(x, shortcut)))

    def gate(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        if shortcut is None:
            raise InvalidOptionError("CMPE-SE needs the block's shortcut: call it as gate(x, shortcut)")
        shortcut = checked_shortcut(x, shortcut)
        u = style_pool(x, ("avg",))[:, :, 0]
        s = style_pool(shortcut, ("avg",))[:, :, 0]
        if self.variant == "double_fc":
            z = torch.cat((torch.relu(self.fc_residual(u)), torch.relu(self.fc_identity(s))), dim=1)
            return torch.sigmoid(self.fc_out(z))
        z = self.imaging(self.pseudo_image(u, s)).flatten(1)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))

    def score_layer(self) -> nn.Module:
        return self.fc_out if self.variant == "double_fc" else self.fc2

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, variant={self.variant}, maps={self.maps}"
