"""CBAM: Convolutional Block Attention Module (an extra beside the SRM paper's modules).

Woo, Park, Lee & Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
Official code: Jongchan/attention-module, MODELS/cbam.py (the module) and
MODELS/model_resnet.py (its place and initialisation).

Two gates in sequence:
- channel attention: the avg- and max-pooled descriptors (the SRM paper's pooling
  ablation's avg+max, through :func:`~recal.layers.pooling.style_pool`) go through ONE
  shared MLP — Linear C→C/r (bias) → ReLU → Linear C/r→C (bias), r = 16 — summed,
  sigmoid: the (N, C) gate of the gate contract, what :meth:`gate` returns, gate hooks
  see and ``channel_mask`` masks;
- spatial attention on the channel-refined map ``y = x · gate · channel_mask``: the
  channel-wise max and mean (in that order, as the official ``ChannelPool``), a k×k
  convolution 2→1 (padding k // 2, no bias; k = 7), BatchNorm2d(1) (the official
  BasicConv with bn=True, relu=False: eps 1e-5, momentum 0.01, affine), sigmoid: an
  (N, 1, H, W) gate, and the output is ``y · spatial_gate(y)``.

Because the forward does more than rescale by the channel gate (``rescales_only =
False``), :func:`~recal.layers.block_end.block_end` calls the module and only adds the
shortcut. A masked (pruned) channel is 0 in ``y`` before the spatial half pools it,
exactly as a channel gate of 0 would make it, so masking a channel also changes the
spatial gate the other channels get.

Initialisation as the official network's (model_resnet.py, which zeroes every bias and
the weight of every BatchNorm inside ``SpatialGate``): both MLP biases 0 and the spatial
BatchNorm's weight 0, so the spatial gate starts at sigmoid(0) = 0.5 everywhere and its
convolution learns once that weight has moved. A backbone's ``init_weights`` would set
that weight to 1 with every other BatchNorm; :meth:`CBAM.restore_own_init` puts it back.

``identity_init`` (:meth:`CBAM.start_as_identity`) starts both halves at exactly 1: the
MLP's last layer zeroed (channel score 0) and the spatial BatchNorm's weight and bias
zeroed, which makes the spatial score 0 for any input, in training and in eval; with the
amplitude 2 each gate is ``2 · sigmoid(0) = 1``. The amplitude scales both gates; hooks
see the channel gate only.

Parameters per module: 2·C·C/r + C/r + C (MLP) + 2·k² (conv) + 2 (BN affine);
CBAM-ResNet-50 has 28,089,624, as the official code (SE-ResNet-50 plus 100 per block).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers.gate import PooledGate, rescale


class CBAM(PooledGate):
    """Channel attention sigmoid(MLP(avg) + MLP(max)), then spatial attention sigmoid(BN(conv([max, mean])))."""

    rescales_only = False
    user_options = ("reduction", "kernel_size")

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__(channels)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise InvalidOptionError(f"CBAM kernel_size={kernel_size!r}: expected an odd positive integer "
                                     "(the paper compares 3 and 7)")
        self.pooling = ("avg", "max")
        self.kernel_size = kernel_size
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.spatial_conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1, momentum=0.01)
        with torch.no_grad():
            self.fc1.bias.zero_()
            self.fc2.bias.zero_()
        self.restore_own_init()

    def excite(self, t: Tensor) -> Tensor:
        # (N, C, 2) → (N, 2, C): one pass of the shared MLP over both descriptors, summed
        scores = self.fc2(torch.relu(self.fc1(t.transpose(1, 2))))
        return torch.sigmoid(scores.sum(dim=1))

    def spatial_gate(self, y: Tensor) -> Tensor:
        """The (N, 1, H, W) spatial gate of the channel-refined map ``y``, times the amplitude."""
        pooled = torch.cat((y.amax(dim=1, keepdim=True), y.mean(dim=1, keepdim=True)), dim=1)
        gate = torch.sigmoid(self.spatial_bn(self.spatial_conv(pooled)))
        return gate * self.amplitude if self.amplitude != 1.0 else gate

    def forward(self, x: Tensor) -> Tensor:
        """``y · spatial_gate(y)`` with ``y = x · applied_gate(x) · channel_mask``."""
        refined = super().forward(x)
        return rescale(refined, self.spatial_gate(refined))

    def score_layer(self) -> nn.Module:
        """The channel half's score layer; :meth:`start_as_identity` also zeroes the spatial half's."""
        return self.fc2

    @torch.no_grad()
    def start_as_identity(self) -> "CBAM":
        """Both gates exactly 1: the MLP's last layer and the spatial BatchNorm's affine zeroed, amplitude 2."""
        self.spatial_bn.weight.zero_()
        self.spatial_bn.bias.zero_()
        return super().start_as_identity()

    @torch.no_grad()
    def restore_own_init(self) -> None:
        """The official zero weight of the spatial BatchNorm (then the identity start, if it has one)."""
        self.spatial_bn.weight.zero_()
        super().restore_own_init()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"
