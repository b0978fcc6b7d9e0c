"""SRM rewritten for quantization: its style statistics and integration as one submodule.

A ``QConfigMapping`` chooses quantization per module, and FX traces a gate's forward
into loose operations that all belong to the gate module. To keep SRM's style statistics
in float32 while its rescale runs in int8 (the ``float_style`` variant), the statistics
must be a module of their own. Keeping only the pooling float would not do:
its (N, C, d) output would be quantized again right away as the integration's input —
per tensor, one scale for the means and the standard deviations alike — which is what
the variant means to avoid. So :class:`StyleScore` is the pooling *and* the integration
that reads the statistics (the (N, C) score before the sigmoid; the variant keeps that sigmoid
float too, :mod:`recal.quantization.variants`), and
:class:`SplitSRM` is the gate ``sigmoid(score(x))`` around it, with the original's
``channel_mask`` and amplitude. The computation is unchanged (tested to rounding).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recal.layers.gate import PooledGate
from recal.layers.pooling import style_pool
from recal.layers.srm import SRM
from recal.models.fuse import FusedSRM

# a leaf of traced graphs here as in recal.layers.gate: its dtype and 1×1 rules are Python branches
torch.fx.wrap("style_pool")


class FusedIntegration(nn.Module):
    """The CFC with its BatchNorm merged (:class:`~recal.models.fuse.FusedSRM`): (N, C, d) → (N, C)."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())

    def forward(self, t: Tensor) -> Tensor:
        return (t * self.weight).sum(dim=2) + self.bias


class StyleScore(nn.Module):
    """SRM's style pooling followed by its integration: (N, C, H, W) → (N, C) scores before the sigmoid."""

    def __init__(self, pooling: tuple[str, ...], integration: nn.Module) -> None:
        super().__init__()
        self.pooling = pooling
        self.integration = integration

    def forward(self, x: Tensor) -> Tensor:
        return self.integration(style_pool(x, self.pooling))


class SplitSRM(PooledGate):
    """An SRM (or a fused one) as ``sigmoid(style(x))``, with :class:`StyleScore` as ``style``."""

    def __init__(self, srm: SRM | FusedSRM) -> None:
        super().__init__(srm.channels)
        self.pooling = srm.pooling
        if isinstance(srm, FusedSRM):
            integration: nn.Module = FusedIntegration(srm.weight, srm.bias)
        else:  # unfused: the MLP integration (or a CFC without BN fusion), then its BN
            integration = nn.Sequential(srm.mlp if srm.integration == "mlp" else srm.cfc, srm.bn)
        self.style = StyleScore(srm.pooling, integration)
        self.channel_mask.copy_(srm.channel_mask)
        self.amplitude = srm.amplitude

    def gate(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.style(x))


def split_srm(model: nn.Module) -> nn.Module:
    """``model`` with every SRM and FusedSRM replaced by its :class:`SplitSRM` (in place; returned)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, (SRM, FusedSRM)):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, SplitSRM(module))
    return model


def style_modules(model: nn.Module) -> list[str]:
    """Names of the :class:`StyleScore` submodules of ``model`` (empty for a network without SRM)."""
    return [name for name, module in model.named_modules() if isinstance(module, StyleScore)]
