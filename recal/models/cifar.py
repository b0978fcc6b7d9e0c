"""CIFAR backbones: ResNet-20/32/56/110, pre-activation ResNet-164, WRN-d-k.

- CIFAR ResNet (He et al. 2016a, §4.2): 3×3 stem with 16 channels, three stages
  of n = (depth − 2) / 6 post-activation basic blocks with 16/32/64 channels.
  Shortcuts that change shape use a 1×1 projection + BN (option B; the paper's
  CIFAR nets use parameter-free option A, +0.01M parameters here) because CMPE-SE
  squeezes the shortcut after its projection. The gate sits after bn2.
- Pre-activation ResNet-164 (He et al. 2016b): n = 18 bottlenecks per stage,
  inner widths 16/32/64, outputs ×4. The gate sits after the last convolution
  (as the official CMPE-SE code); the projection shortcut reads the
  pre-activated input, and stage 1's 16→64 shortcut IS projected (the official
  CMPE-SE ResNet-164 omits it — a bug we do not copy).
- WRN-d-k (Zagoruyko & Komodakis 2016): n = (d − 4) / 6 pre-activation basic
  blocks per stage, widths 16k/32k/64k, optional dropout between the convs.
"""

from __future__ import annotations

from torch import Tensor, nn

from recal.layers.block_context import BlockContext
from recal.layers.block_end import block_end
from recal.models.parts import Classifier, GateFactory, conv1x1, conv3x3, conv_out, init_weights, projection_shortcut
from recal.models.resnet import BasicBlock


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1×1 → BN-ReLU-conv3×3 → BN-ReLU-conv1×1; gate after conv3."""


    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, make_gate: GateFactory | None = None, spatial_size: int | None = None) -> None:
        super().__init__()
        out = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = conv1x1(inplanes, out, stride) if stride != 1 or inplanes != out else None
        self.gate = make_gate(BlockContext(out, planes, spatial_size)) if make_gate else None

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return block_end(out, gate=self.gate, shortcut=identity, relu=False)


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3×3 → BN-ReLU-(dropout)-conv3×3; gate after conv2."""


    def __init__(self, inplanes: int, planes: int, stride: int = 1, make_gate: GateFactory | None = None,
                 spatial_size: int | None = None, dropout: float = 0.0, widen_factor: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = conv1x1(inplanes, planes, stride) if stride != 1 or inplanes != planes else None
        row_width = max(planes // widen_factor, 1)  # CMPE-SE lays WRN maps out as (2k, C/k) images
        self.gate = make_gate(BlockContext(planes, planes, spatial_size, row_width)) if make_gate else None

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return block_end(out, gate=self.gate, shortcut=identity, relu=False)


class CifarResNet(Classifier, nn.Module):
    """A three-stage CIFAR network: 3×3 stem, stages at 32/16/8 px, pooled linear head.

    ``preactivation`` networks end with BN-ReLU before pooling; post-activation
    ones have BN-ReLU in the stem.
    """


    def __init__(self, make_block, widths: tuple[int, int, int], blocks: int, num_classes: int,
                 stem_width: int = 16, preactivation: bool = False, input_size: int | None = 32, expansion: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(3, stem_width)
        self.preactivation = preactivation
        self.bn1 = nn.Identity() if preactivation else nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        inplanes, size, stages = stem_width, input_size, []
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            size = conv_out(size, 3, stride, 1)
            layers = []
            for j in range(blocks):
                layers.append(make_block(inplanes, width, stride if j == 0 else 1, size))
                inplanes = width * expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn_final = nn.BatchNorm2d(inplanes) if preactivation else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and the three stages, with the final BN-ReLU of pre-activation nets."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.relu(self.bn_final(x)) if self.preactivation else x

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


def cifar_resnet(depth: int, num_classes: int = 10, make_gate: GateFactory | None = None, input_size: int | None = 32) -> CifarResNet:
    """CIFAR ResNet-{20,32,44,56,110,…} with post-activation basic blocks."""
    blocks = (depth - 2) // 6

    def make_block(inplanes: int, planes: int, stride: int, size: int | None) -> nn.Module:
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = projection_shortcut(inplanes, planes, stride)
        return BasicBlock(inplanes, planes, stride, downsample, make_gate=make_gate, spatial_size=size)

    return CifarResNet(make_block, (16, 32, 64), blocks, num_classes, input_size=input_size)


def preact_resnet(depth: int = 164, num_classes: int = 10, make_gate: GateFactory | None = None, input_size: int | None = 32) -> CifarResNet:
    """Pre-activation bottleneck ResNet (depth 164: 18 blocks per stage)."""
    blocks = (depth - 2) // 9

    def make_block(inplanes: int, planes: int, stride: int, size: int | None) -> nn.Module:
        return PreActBottleneck(inplanes, planes, stride, make_gate=make_gate, spatial_size=size)

    return CifarResNet(make_block, (16, 32, 64), blocks, num_classes, preactivation=True,
                       input_size=input_size, expansion=PreActBottleneck.expansion)


def wide_resnet(depth: int, widen_factor: int, num_classes: int = 10, make_gate: GateFactory | None = None,
                dropout: float = 0.0, input_size: int | None = 32) -> CifarResNet:
    """WRN-depth-k with pre-activation basic blocks."""
    blocks = (depth - 4) // 6
    widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)

    def make_block(inplanes: int, planes: int, stride: int, size: int | None) -> nn.Module:
        return WideBasicBlock(inplanes, planes, stride, make_gate, size, dropout, widen_factor)

    return CifarResNet(make_block, widths, blocks, num_classes, preactivation=True, input_size=input_size)
