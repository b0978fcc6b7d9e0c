"""The official SRM layer, transcribed once for the benchmarks and the tests that compare recal with it.

hyunjaelee410/style-based-recalibration-module, ``models/recalibration_modules.py``,
``SRMLayer``: style pooling (per-channel mean and unbiased standard deviation, eps 1e-5
inside the square root), style integration (a (C, 2) channel-wise weight, zero-initialised,
then BatchNorm2d over the (N, C, 1, 1) scores and a sigmoid), and the rescale ``x * g``.
Written as its authors did — ``view``, ``var``, ``cat``, an explicit sum — so that
benchmarks/bench_modules.py times the code users would otherwise run and
tests/layers/test_srm.py checks recal/layers/srm.py against it. Left out: the ``srm_param``
attributes the official code sets on its parameters to exempt them from weight decay
(recal/models/param_groups.py finds recal's SRM modules instead).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["OfficialSRM"]


class OfficialSRM(nn.Module):
    """A direct transcription of hyunjaelee410/style-based-recalibration-module's SRMLayer."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.cfc = nn.Parameter(torch.zeros(channel, 2))
        self.bn = nn.BatchNorm2d(channel)
        self.activation = nn.Sigmoid()

    def _style_pooling(self, x: Tensor, eps: float = 1e-5) -> Tensor:
        n, c, _, _ = x.size()
        channel_mean = x.view(n, c, -1).mean(dim=2, keepdim=True)
        channel_var = x.view(n, c, -1).var(dim=2, keepdim=True) + eps
        channel_std = channel_var.sqrt()
        return torch.cat((channel_mean, channel_std), dim=2)

    def _style_integration(self, t: Tensor) -> Tensor:
        z = t * self.cfc[None, :, :]
        z = torch.sum(z, dim=2)[:, :, None, None]
        return self.activation(self.bn(z))

    def forward(self, x: Tensor) -> Tensor:
        return x * self._style_integration(self._style_pooling(x))
