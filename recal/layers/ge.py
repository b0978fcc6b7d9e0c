"""GE: Gather-Excite.

Hu, Shen, Albanie, Sun & Vedaldi, "Gather-Excite: Exploiting Feature Context in
Convolutional Neural Networks", NeurIPS 2018. Official code: hujie-frank/GENet
(Caffe); the SRM repo's GELayer is the GE-θ, global-extent form.

Variants (``variant``):
- ``theta_minus`` (GE-θ⁻): parameter-free gather by average pooling over the
  extent, nearest upsampling back to H×W, sigmoid.
- ``theta`` (GE-θ, the SRM paper's GE rows): depthwise convolutions gather, then
  BatchNorm, sigmoid. With the global extent this is ONE depthwise convolution
  whose kernel is the whole feature map, with bias and no padding (output 1×1).
- ``theta_plus`` (GE-θ⁺): the GE-θ gather, ReLU, then an MLP C→C/16→C with
  biases (1×1 convolutions in the official Caffe), sigmoid.

``extent`` is ``"global"`` or e ∈ {2, 4, 8}. A finite extent gathers with log2(e)
depthwise 3×3 stride-2 convolutions (BN and ReLU between them) or an e×e average
pool (θ⁻), and the gate is spatial, (N, C, H, W), after nearest upsampling.

The global depthwise kernel needs the feature-map size at construction
(``spatial_size``; backbones derive it from their ``input_size``); a forward at
any other size raises an error naming both sizes — unless ``pool_to_built_size`` is set
(:func:`allow_any_map_size`; detection and segmentation, whose images vary in size, set it):
then a map of any other size is adaptive-average-pooled to the ``spatial_size``×``spatial_size``
the gather was built for, and the learned gather applies to that. At the built size nothing is
pooled, so the gate is exactly the classification one. Unlike timm 1.0.31's
GatherExcite we never pad the "global" convolution (timm's gives a 55×55 output
at 56×56 input).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers.block_context import BlockContext
from recal.layers.kernels.global_dot import global_depthwise
from recal.layers.gate import ChannelGate

GEVariant = Literal["theta_minus", "theta", "theta_plus"]
GE_VARIANTS = ("theta_minus", "theta", "theta_plus")
FINITE_EXTENTS = (2, 4, 8)


def _check_options(variant: str, extent: int | str, spatial_size: int | None) -> None:
    if variant not in GE_VARIANTS:
        raise InvalidOptionError(f"unknown GE variant {variant!r}; valid choices: {list(GE_VARIANTS)}")
    if extent != "global" and extent not in FINITE_EXTENTS:
        raise InvalidOptionError(f"unknown GE extent {extent!r}; valid choices: ['global', 2, 4, 8]")
    if extent == "global" and variant != "theta_minus" and not spatial_size:
        raise InvalidOptionError(
            f"GE variant {variant!r} with global extent needs the feature-map size (spatial_size, "
            "derived from the backbone's input_size)"
        )


def checked_map_size(x: Tensor, size: int) -> Tensor:
    """``x``, after checking that its map is ``size``×``size`` (what the global gather was built for)."""
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        raise InvalidOptionError(
            f"GE global gather was built for {size}×{size} feature maps but got {h}×{w}; "
            "set the backbone's input_size to the image size you train on")
    return x


def map_at_built_size(x: Tensor, size: int, pool: bool) -> Tensor:
    """``x`` at the ``size``×``size`` the global gather was built for: unchanged at that size, else
    adaptive-average-pooled to it when ``pool``, else an error naming both sizes."""
    if not pool or tuple(x.shape[-2:]) == (size, size):
        return checked_map_size(x, size)
    return F.adaptive_avg_pool2d(x, size)


def allow_any_map_size(model: nn.Module) -> int:
    """Let every global GE gather in ``model`` take maps of any size (pooled to its built size); returns how many."""
    gates = [m for m in model.modules() if isinstance(m, GatherExcite) and m.extent == "global"]
    for gate in gates:
        gate.pool_to_built_size = True
    return len(gates)


def upsample_nearest(g: Tensor, like: Tensor) -> Tensor:
    """``g`` upsampled (nearest) to ``like``'s H×W."""
    return F.interpolate(g, size=like.shape[-2:], mode="nearest")


# leaves of traced graphs: their size arithmetic is Python on the map's shape
torch.fx.wrap("checked_map_size")
torch.fx.wrap("map_at_built_size")
torch.fx.wrap("upsample_nearest")


class GatherExcite(ChannelGate):
    """Gather-Excite gate (GE-θ⁻ / GE-θ / GE-θ⁺) with global or finite extent."""

    user_options = ("variant", "extent", "reduction")
    block_options = ("spatial_size",)

    @classmethod
    def from_block(cls, context: BlockContext, **options: Any) -> "GatherExcite":
        """The global gather's kernel is the block's map: its size comes from the block."""
        return cls(context.channels, spatial_size=context.spatial_size, **options)

    def __init__(
        self,
        channels: int,
        variant: GEVariant = "theta",
        extent: Literal["global", 2, 4, 8] = "global",
        spatial_size: int | None = None,
        reduction: int = 16,
    ) -> None:
        super().__init__(channels)
        _check_options(variant, extent, spatial_size)
        self.variant, self.extent, self.spatial_size = variant, extent, spatial_size
        self.spatial = extent != "global"
        self.pool_to_built_size = False  # see allow_any_map_size
        if variant != "theta_minus":
            self.gather = self._conv_gather(channels, extent, spatial_size)
        if variant == "theta_plus":
            hidden = max(channels // reduction, 1)
            self.mlp = nn.Sequential(
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, hidden, 1, bias=True),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, channels, 1, bias=True),
            )

    @staticmethod
    def _conv_gather(channels: int, extent: int | str, spatial_size: int | None) -> nn.Sequential:
        if extent == "global":
            conv = nn.Conv2d(channels, channels, spatial_size, groups=channels, bias=True)
            return nn.Sequential(conv, nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        for i in range(int(math.log2(extent))):
            if i:
                layers.append(nn.ReLU(inplace=True))
            layers += [
                nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False),
                nn.BatchNorm2d(channels),
            ]
        return nn.Sequential(*layers)

    def gate(self, x: Tensor) -> Tensor:
        if self.extent == "global" and self.variant != "theta_minus":
            x = map_at_built_size(x, self.spatial_size, self.pool_to_built_size)
        if self.variant == "theta_minus":
            if self.extent == "global":
                return torch.sigmoid(x.mean(dim=(2, 3)))
            g = F.avg_pool2d(x, self.extent, self.extent, ceil_mode=True, count_include_pad=False)
        elif self.extent == "global":
            conv, bn = self.gather
            g = bn(global_depthwise(x, conv.weight, conv.bias)[:, :, None, None])
            if self.variant == "theta_plus":
                g = self.mlp(g)
        else:
            g = self.gather(x)
            if self.variant == "theta_plus":
                g = self.mlp(g)
        if self.extent == "global":
            return torch.sigmoid(g.flatten(1))
        return torch.sigmoid(upsample_nearest(g, x))

    def score_layer(self) -> nn.Module:
        """θ⁺: the MLP's last convolution; θ: the gather's last convolution (its BatchNorm follows)."""
        if self.variant == "theta_minus":
            raise InvalidOptionError("GE variant 'theta_minus' cannot start as identity (identity_init): its gate is "
                                     "the sigmoid of the pooled map itself, with no parameters to zero; use 'theta' "
                                     "or 'theta_plus'")
        if self.variant == "theta_plus":
            return self.mlp[-1]
        return [layer for layer in self.gather if isinstance(layer, nn.Conv2d)][-1]

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, variant={self.variant}, extent={self.extent}, "
                f"spatial_size={self.spatial_size}")
