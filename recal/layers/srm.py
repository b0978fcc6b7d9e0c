"""SRM: Style-based Recalibration Module.

Lee, Kim & Nam, "SRM: A Style-based Recalibration Module for Convolutional
Neural Networks", ICCV 2019. Official code: hyunjaelee410/style-based-
recalibration-module, models/recalibration_modules.py.

style pooling (mean, std per channel) → style integration (channel-wise fully
connected layer, CFC: z_c = Σ_k w_ck · t_ck, no bias, zero init) → BatchNorm over
the (N, C) scores → sigmoid. Zero-initialised CFC makes every gate exactly 0.5 at
initialisation. 4C parameters per module (CFC 2C + BN affine 2C).

Differences from the official code, all opt-in except the first:
- a 1×1 feature map gives std = sqrt(1e-5) instead of NaN (see pooling.py);
- ``pooling`` may be any set over avg/std/max (the paper's ablation);
- ``integration="mlp"`` replaces the CFC by Linear(d·C → C/16) → ReLU →
  Linear(C/16 → C), with biases (the paper's integration ablation);
- ``bn=False`` drops the BatchNorm.
The official BatchNorm2d over (N, C, 1, 1) scores is the same computation as the
BatchNorm1d over (N, C) used here (same state-dict keys); the official CFC
parameter ``cfc`` is ``cfc.weight`` here.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers.gate import PooledGate
from recal.layers.pooling import PoolingName, canonical_pooling

Integration = Literal["cfc", "mlp"]


class ChannelwiseFC(nn.Module):
    """Channel-wise fully connected layer: (N, C, d) → (N, C), z_c = Σ_k w_ck t_ck."""

    def __init__(self, channels: int, d: int) -> None:
        super().__init__()
        # Zero init: the scores start at 0, so BN + sigmoid give gates of exactly 0.5.
        self.weight = nn.Parameter(torch.zeros(channels, d))

    def forward(self, t: Tensor) -> Tensor:
        return (t * self.weight.to(t.dtype)).sum(dim=2)


class StyleMLP(nn.Module):
    """The MLP integration of the SRM ablation: flatten (N, C·d) → C/r → ReLU → C."""

    def __init__(self, channels: int, d: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels * d, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, t: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(t.flatten(1))))


class SRM(PooledGate):
    """Style-based recalibration: sigmoid(BN(integration(style_pool(x))))."""

    user_options = ("pooling", "integration", "bn", "reduction")

    def __init__(
        self,
        channels: int,
        pooling: Sequence[PoolingName] = ("avg", "std"),
        integration: Integration = "cfc",
        bn: bool = True,
        reduction: int = 16,
    ) -> None:
        super().__init__(channels)
        self.pooling = canonical_pooling(pooling)
        self.integration = integration
        d = len(self.pooling)
        if integration == "cfc":
            self.cfc = ChannelwiseFC(channels, d)
        elif integration == "mlp":
            self.mlp = StyleMLP(channels, d, reduction)
        else:
            raise InvalidOptionError(f"unknown SRM integration {integration!r}; valid choices: ['cfc', 'mlp']")
        self.bn = nn.BatchNorm1d(channels) if bn else nn.Identity()

    def integrate(self, t: Tensor) -> Tensor:
        """Style integration: (N, C, d) statistics → (N, C) scores (before BN)."""
        return self.cfc(t) if self.integration == "cfc" else self.mlp(t)

    def excite(self, t: Tensor) -> Tensor:
        return torch.sigmoid(self.bn(self.integrate(t)))

    def score_layer(self) -> nn.Module:
        return self.cfc if self.integration == "cfc" else self.mlp.fc2

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pooling={list(self.pooling)}, integration={self.integration}"
