"""SK (recal/layers/sk.py) and split attention (recal/layers/splat.py): conv replacements."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recal.models import create_conv, create_model, create_recalibration
from recal.layers.sk import SelectiveKernelConv
from recal.layers.splat import SplitAttentionConv


@pytest.mark.parametrize("channels, d", [(128, 32), (256, 32), (512, 32), (1024, 64)])
def test_sk_reduction_width_is_max_c_over_16_and_32(channels: int, d: int) -> None:
    sk = SelectiveKernelConv(channels, channels, groups=32)
    assert sk.fc_reduce[0].out_features == d and sk.fc_reduce[0].bias is None
    assert sk.fc_select.out_features == 2 * channels and sk.fc_select.bias is None
    assert isinstance(sk.fc_reduce[1], nn.BatchNorm1d)


def test_sk_branches_are_grouped_3x3_with_dilation_1_and_2() -> None:
    sk = SelectiveKernelConv(128, 128, stride=2, groups=32)
    convs = [branch[0] for branch in sk.branches]
    assert [(c.kernel_size, c.dilation, c.padding, c.groups, c.stride) for c in convs] == [
        ((3, 3), (1, 1), (1, 1), 32, (2, 2)),
        ((3, 3), (2, 2), (2, 2), 32, (2, 2)),
    ]
    assert sk(torch.randn(2, 128, 8, 8)).shape == (2, 128, 4, 4)


def test_sk_attention_is_a_softmax_over_the_branches(randomize) -> None:
    sk = randomize(SelectiveKernelConv(64, 64, groups=32)).eval()
    sk.branches[1] = sk.branches[0]  # identical branches: any convex weighting returns the branch
    x = torch.randn(2, 64, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(sk(x), sk.branches[0](x))


def test_sk_output_is_the_attention_weighted_sum(randomize) -> None:
    sk = randomize(SelectiveKernelConv(64, 64, groups=32)).eval()
    x = torch.randn(2, 64, 6, 6)
    with torch.no_grad():
        a, b = sk.branches[0](x), sk.branches[1](x)
        z = sk.fc_reduce((a + b).mean((2, 3)))
        w = sk.fc_select(z).view(2, 2, 64).softmax(dim=1)
        expected = a * w[:, 0, :, None, None] + b * w[:, 1, :, None, None]
        torch.testing.assert_close(sk(x), expected)


@pytest.mark.parametrize("in_ch, attn", [(64, 32), (128, 64), (256, 128), (512, 256)])
def test_splat_attention_width(in_ch: int, attn: int) -> None:
    splat = SplitAttentionConv(in_ch, in_ch)
    assert splat.fc1.out_channels == attn
    assert splat.conv.out_channels == 2 * in_ch and splat.conv.groups == 2


def test_splat_avd_carries_the_stride() -> None:
    splat = SplitAttentionConv(64, 64, stride=2)
    assert splat.conv.stride == (1, 1) and isinstance(splat.avd, nn.AvgPool2d)
    assert splat(torch.randn(2, 64, 8, 8)).shape == (2, 64, 4, 4)
    assert SplitAttentionConv(64, 64, stride=1)(torch.randn(2, 64, 8, 8)).shape == (2, 64, 8, 8)


def test_splat_attention_is_a_softmax_over_the_radix(randomize) -> None:
    splat = randomize(SplitAttentionConv(64, 64)).eval()
    with torch.no_grad():
        # make both radix splits identical — the grouped 3×3 feeds split r from input half r, so equal
        # weights and equal input halves — and the output is that split, whatever the attention
        splat.conv.weight[64:] = splat.conv.weight[:64]
        splat.bn0.weight[64:], splat.bn0.bias[64:] = splat.bn0.weight[:64], splat.bn0.bias[:64]
        splat.bn0.running_mean[64:], splat.bn0.running_var[64:] = splat.bn0.running_mean[:64], splat.bn0.running_var[:64]
        half = torch.randn(2, 32, 6, 6)
        x = torch.cat((half, half), dim=1)
        split = splat.act0(splat.bn0(splat.conv(x)))[:, :64]
        torch.testing.assert_close(splat(x), split)


@pytest.mark.parametrize("name", ["sknet50", "resnest50"])
def test_compound_models_forward(name: str) -> None:
    model = create_model(name, 10)
    with torch.no_grad():
        for training in (True, False):
            out = model.train(training)(torch.randn(2, 3, 32, 32))
            assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("make", [lambda: SelectiveKernelConv(64, 64, 2, 32), lambda: SplitAttentionConv(64, 64, 2)])
def test_conv_replacements_backpropagate(make) -> None:
    conv = make()
    x = torch.randn(2, 64, 8, 8, requires_grad=True)
    conv(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in conv.parameters())


def test_sknet50_is_resnext50_with_sk() -> None:
    model = create_model("sknet50")
    sks = [m for m in model.modules() if isinstance(m, SelectiveKernelConv)]
    assert len(sks) == 16
    assert [sk.branches[0][0].out_channels for sk in sks] == [128] * 3 + [256] * 4 + [512] * 6 + [1024] * 3


def test_resnest50_has_a_deep_stem_and_average_downsampling() -> None:
    model = create_model("resnest50")
    stem_convs = [m for m in model.conv1 if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in stem_convs] == [(3, 32, (2, 2)), (32, 32, (1, 1)), (32, 64, (1, 1))]
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)
    assert sum(isinstance(m, SplitAttentionConv) for m in model.modules()) == 16


def test_sk_on_a_16_channel_cifar_block_names_both() -> None:
    with pytest.raises(ValueError) as info:
        create_model("cifar_resnet20", recalibration="sk")
    assert "'sk'" in str(info.value) and "'cifar_resnet20'" in str(info.value) and "16" in str(info.value)


@pytest.mark.parametrize("name", ["resnet18", "preact_resnet164", "wrn28_10"])
def test_splat_needs_a_bottleneck_imagenet_block(name: str) -> None:
    with pytest.raises(ValueError, match=rf"'splat'.*'{name}'"):
        create_model(name, 10, recalibration="splat")


def test_create_conv_and_create_recalibration_keep_their_kinds() -> None:
    assert isinstance(create_conv("sk", 64, 64, 1, 32), SelectiveKernelConv)
    assert isinstance(create_conv("splat", 64, 64, 2, 1), SplitAttentionConv)
    with pytest.raises(ValueError, match="create_conv"):
        create_recalibration("sk", 64)
    with pytest.raises(ValueError, match="create_recalibration"):
        create_conv("se", 64, 64)
    with pytest.raises(ValueError, match=r"'dilation'.*'sk'|'sk'.*'dilation'"):
        create_conv("sk", 64, 64, 1, 32, dilation=2)
