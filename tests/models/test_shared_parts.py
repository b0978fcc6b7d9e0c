"""The pieces both backbone files use come from one place (recal/models/parts.py).

ImageNet ResNets (recal/models/resnet.py) and CIFAR networks (recal/models/cifar.py) once
each had their own output-size arithmetic, projection shortcut and initialisation; now both
use the one in recal/models/parts.py, and these tests hold them to it.
"""

from __future__ import annotations

import torch
from torch import nn

import recal.models.cifar as cifar
import recal.models.parts as parts
import recal.models.resnet as resnet
from recal.models import create_model


def test_output_size_arithmetic_is_one_function_and_sizes_ge_in_both_families() -> None:
    assert resnet.conv_out is parts.conv_out and cifar.conv_out is parts.conv_out
    assert parts.conv_out(224, 7, 2, 3) == 112 and parts.conv_out(32, 3, 2, 1) == 16 and parts.conv_out(None, 3, 1, 1) is None
    imagenet, small = create_model("ge_resnet50", input_size=96), create_model("ge_cifar_resnet20", 10, input_size=40)
    # GE's global kernel is the gated map: 96 → 24 after the stem, 24/12/6/3 per stage; CIFAR 40 → 40/20/10
    assert [imagenet.get_submodule(f"layer{i}.0.gate").spatial_size for i in (1, 2, 3, 4)] == [24, 12, 6, 3]
    assert [small.get_submodule(f"layer{i}.0.gate").spatial_size for i in (1, 2, 3)] == [40, 20, 10]


def test_projection_shortcut_is_one_function_in_both_families() -> None:
    assert resnet.projection_shortcut is parts.projection_shortcut
    assert cifar.projection_shortcut is parts.projection_shortcut
    for shortcut in (create_model("resnet50").layer2[0].downsample, create_model("cifar_resnet20", 10).layer2[0].downsample):
        conv, bn = shortcut
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (2, 2)
        assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels
    pool, conv, bn = create_model("resnest50").layer2[0].downsample  # avg_down: the pool carries the stride
    assert isinstance(pool, nn.AvgPool2d) and conv.stride == (1, 1)


def test_initialisation_is_one_function_in_both_families() -> None:
    assert resnet.init_weights is parts.init_weights and cifar.init_weights is parts.init_weights
    for model in (create_model("se_resnet18", 10), create_model("se_wrn16_4", 10)):
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        # Kaiming-normal, fan_out: std = sqrt(2 / (out_channels · k²))
        conv = max(convs, key=lambda m: m.weight.numel())
        expected = (2 / (conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1])) ** 0.5
        assert abs(conv.weight.std().item() / expected - 1) < 0.05
        assert all(torch.equal(n.weight, torch.ones_like(n.weight)) and not n.bias.any() for n in norms)
