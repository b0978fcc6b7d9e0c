"""ResNet and ResNeXt for ImageNet (He et al. 2016; Xie et al. 2017).

Readable top to bottom, with torchvision's state-dict names (a plain v1.5
ResNet loads ``torchvision.models.resnet50().state_dict()`` unchanged). Every
block takes a gate factory (the recalibration module placed on the residual
branch after the last BatchNorm, before the addition) and a conv factory (a
replacement for the bottleneck's 3×3: SK or split attention).

``stride_in_1x1``: True puts a stage's stride in the first 1×1 convolution (the
Caffe "v1" layout of the SE/GE/SRM papers' FLOP figures); False puts it in the
3×3 (torchvision's "v1.5", the official SRM code's layout, the default).
``deep_stem`` / ``avg_down`` give ResNeSt's 3×(3×3) stem and average-pool
downsampling shortcuts (timm's ``resnest50d``).

``replace_stride_with_dilation`` (three bools, for layer2..4; torchvision's option and
arithmetic, the dense-prediction backbones of DeepLab/FCN): a True stage keeps stride 1 and
dilates instead — its later blocks' 3×3 convolutions get dilation = the previous dilation ×
the stride it replaced, its first block keeps the previous stage's dilation. The stage then
keeps the previous map size, so the gates' ``spatial_size`` (GE's global kernel) follows the
real stride. Parameters are unchanged. torchvision refuses dilation in BasicBlock; here a
BasicBlock dilates as timm's does (conv1 the block's first dilation, conv2 the stage's), so
that ResNet-18/34 can serve as small dense backbones.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from recal.layers.block_context import BlockContext
from recal.layers.block_end import block_end
from recal.errors import InvalidOptionError
from recal.models.parts import (Classifier, ConvFactory, GateFactory, conv1x1, conv3x3, conv_out, init_weights,
                                projection_shortcut)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions; the gate sits after bn2.

    ``dilation``: the stage's; ``first_dilation`` (None: the same): conv1's, the dilation the block's
    input was computed at (the previous stage's, in the first block of a dilated stage).
    """


    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        make_gate: GateFactory | None = None,
        spatial_size: int | None = None,
        dilation: int = 1,
        first_dilation: int | None = None,
        **_: object,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation=first_dilation or dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.gate = make_gate(BlockContext(planes, planes, spatial_size)) if make_gate else None

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        return block_end(out, norm=self.bn2, gate=self.gate, shortcut=identity, relu=True, overwrite=True)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (grouped, or a conv replacement) → 1×1; the gate sits after bn3.

    The 3×3 is dilated by ``first_dilation`` (None: ``dilation``): torchvision's first block of a
    dilated stage keeps the previous stage's dilation, its later blocks take the stage's.
    """


    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        make_gate: GateFactory | None = None,
        spatial_size: int | None = None,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        make_conv: ConvFactory | None = None,
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        dilation_3x3 = first_dilation or dilation
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        if make_conv is None:
            self.conv2 = conv3x3(width, width, stride_3x3, groups, dilation_3x3)
            self.bn2 = nn.BatchNorm2d(width)
        else:  # the replacement brings its own BatchNorm and ReLU
            self.conv2 = make_conv(width, width, stride_3x3, groups, dilation_3x3)
            self.bn2 = nn.Identity()
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.gate = make_gate(BlockContext(planes * self.expansion, width, spatial_size)) if make_gate else None

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.conv3(out)
        return block_end(out, norm=self.bn3, gate=self.gate, shortcut=identity, relu=True, overwrite=True)


def _deep_stem(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        conv3x3(3, width, 2), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        conv3x3(width, out),
    )


class ResNet(Classifier, nn.Module):
    """ResNet / ResNeXt with pluggable recalibration (gate) and 3×3 replacement (conv)."""


    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = False,
        make_gate: GateFactory | None = None,
        make_conv: ConvFactory | None = None,
        input_size: int | None = 224,
        deep_stem: bool = False,
        stem_width: int = 32,
        avg_down: bool = False,
        replace_stride_with_dilation: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        dilate = check_dilation(replace_stride_with_dilation)
        self.inplanes = 64
        self.conv1 = _deep_stem(stem_width, 64) if deep_stem else nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        size = conv_out(conv_out(input_size, 3, 2, 1), 3, 2, 1)
        block_options = dict(
            make_gate=make_gate, groups=groups, base_width=width_per_group,
            stride_in_1x1=stride_in_1x1, make_conv=make_conv,
        )
        stages, dilation = [], 1
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride, previous_dilation = (1 if i == 0 else 2), dilation
            if i > 0 and dilate[i - 1]:
                dilation, stride = dilation * stride, 1
            size = conv_out(size, 3, stride, 1)  # a dilated 3×3 (padding = dilation) keeps the map size
            stages.append(self._make_layer(block, planes, blocks, stride, size, avg_down, block_options,
                                           dilation, previous_dilation))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, size: int | None, avg_down: bool, options: dict,
                    dilation: int = 1, previous_dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = projection_shortcut(self.inplanes, planes * block.expansion, stride, avg_down)
        layers = [block(self.inplanes, planes, stride, downsample, spatial_size=size, dilation=dilation,
                        first_dilation=previous_dilation, **options)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, spatial_size=size, dilation=dilation, **options)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and the four stages: (N, 3, H, W) → (N, C, H/32, W/32) (H/8 with layer3 and layer4 dilated)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


def check_dilation(replace_stride_with_dilation: Sequence[bool] | None,
                   option: str = "option 'replace_stride_with_dilation'") -> tuple[bool, bool, bool]:
    """The three per-stage flags (layer2, layer3, layer4) of ``replace_stride_with_dilation``; None: none dilated.

    ``option`` names the value in the error (the config key, when read from one).
    """
    if replace_stride_with_dilation is None:
        return (False, False, False)
    flags = tuple(replace_stride_with_dilation)
    if len(flags) != 3 or not all(isinstance(flag, bool) for flag in flags):
        raise InvalidOptionError(f"{option}={list(flags)!r}: expected 3 booleans, "
                                 "one each for layer2, layer3 and layer4 (e.g. [false, true, true])")
    return flags
