"""Small random-initialised networks of every recalibration family, with non-trivial BN statistics."""

from __future__ import annotations

import torch
from torch import nn

from recal.models.cifar import cifar_resnet
from recal.models.registry import GATES, conv_factory, gate_factory
from recal.models.resnet import Bottleneck, ResNet

# SK and split attention replace a bottleneck's 3×3 (≥ 64 channels): a one-block-per-stage ResNet
CONV_FAMILIES = ("sk", "splat")
FAMILIES = ("none", *GATES, *CONV_FAMILIES)


def family_network(family: str, num_classes: int = 10) -> tuple[nn.Module, int]:
    """(network, input size): a CIFAR ResNet-8 (ResNet-20's blocks, one per stage) with ``family``'s gates,
    or a one-block-per-stage bottleneck ResNet at 64 px for the conv replacements; eval mode."""
    torch.manual_seed(0)
    if family in CONV_FAMILIES:
        model, size = ResNet(Bottleneck, [1, 1, 1, 1], num_classes, make_conv=conv_factory(family), input_size=64), 64
    else:
        model, size = cifar_resnet(8, num_classes, None if family == "none" else gate_factory(family)), 32
    return with_running_statistics(model, size), size


@torch.no_grad()
def with_running_statistics(model: nn.Module, size: int, steps: int = 3) -> nn.Module:
    """``model`` in eval mode with BN as after training: running statistics and affine away from (0, 1).

    The statistics are the average of a few train-mode batches (momentum None while they run),
    so that folding BN into the convolutions changes every weight. Zero-initialised parameters
    (SRM's CFC, whose gates would otherwise all be 0.5) are drawn at random too.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    generator = torch.Generator().manual_seed(1)
    for parameter in model.parameters():
        if not parameter.any():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    for norm in norms:
        norm.momentum = None
        if norm.affine:
            norm.weight.copy_(torch.rand(norm.weight.shape, generator=generator) * 0.5 + 0.5)
            norm.bias.copy_(torch.randn(norm.bias.shape, generator=generator) * 0.1)
    model.train()
    for _ in range(steps):
        model(torch.randn(8, 3, size, size, generator=generator) * 2 + 0.5)
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()
