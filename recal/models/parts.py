"""The parts every backbone shares: conv helpers, the downsampling shortcut, the
initialisation, the output-size arithmetic that sizes GE's global kernel, and the
factory types a backbone takes.
"""

from __future__ import annotations

from typing import Callable, Protocol

from torch import nn

from recal.errors import InvalidOptionError
from recal.layers.block_context import BlockContext
from recal.layers.gate import ChannelGate


class GateFactory(Protocol):
    def __call__(self, context: BlockContext) -> nn.Module: ...


ConvFactory = Callable[[int, int, int, int, int], nn.Module]
"""(in_ch, out_ch, stride, groups, dilation) → a 3×3 conv replacement that includes its BN and ReLU."""


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3×3 convolution with padding, no bias (BatchNorm follows)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution, no bias (BatchNorm follows)."""
    return nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)


def conv_out(size: int | None, kernel: int, stride: int, padding: int) -> int | None:
    """Output side of a convolution or pooling (floor mode) on a ``size`` input."""
    return None if size is None else (size + 2 * padding - kernel) // stride + 1


def projection_shortcut(inplanes: int, outplanes: int, stride: int, avg_down: bool = False) -> nn.Sequential:
    """The projection shortcut of a block that changes shape: 1×1 conv (strided) + BN.

    ``avg_down`` (ResNeSt, timm's ``resnet*d``): a stride-sized average pool carries the
    stride and the 1×1 convolution is not strided.
    """
    if not avg_down:
        return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))
    pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
    return nn.Sequential(pool, conv1x1(inplanes, outplanes), nn.BatchNorm2d(outplanes))


def init_weights(model: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan_out) convs, BN 1/0.

    Gate convolutions (GE, CMPE-SE, CBAM) are initialised like the backbone's, as in the
    official code; SRM's CFC is not a convolution and keeps its zeros. Then every gate
    redoes what it initialises otherwise (:meth:`~recal.layers.gate.ChannelGate.restore_own_init`):
    CBAM's zero spatial BatchNorm weight, and a gate started as the identity
    (``identity_init``, amplitude ≠ 1) is started so again: its score layer may be one of
    the convolutions drawn here.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, ChannelGate):
            m.restore_own_init()


def classifier_path(model: nn.Module) -> str:
    """The submodule name of ``model``'s classifier: what ``get_classifier()`` returns (``"fc"`` in recal),
    else its last linear layer (torchvision's ``fc``, ``classifier.1``, ``heads.head`` …)."""
    if callable(getattr(model, "get_classifier", None)):
        classifier = model.get_classifier()
        return next(name for name, module in model.named_modules() if module is classifier)
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise InvalidOptionError(f"{type(model).__name__} has no get_classifier() and no linear layer; "
                                 "name its classifier submodule")
    return linear[-1]


class Classifier:
    """timm's classifier interface for a network whose head is the linear layer ``classifier_name``."""

    classifier_name = "fc"

    def get_classifier(self) -> nn.Linear:
        """The network's classifier (its last layer)."""
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""
        old = self.get_classifier()
        setattr(self, self.classifier_name, nn.Linear(old.in_features, num_classes, device=old.weight.device,
                                                      dtype=old.weight.dtype))
