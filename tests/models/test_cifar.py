"""CIFAR backbones (recal/models/cifar.py): ResNet-20/56/110, pre-activation ResNet-164, WRN-d-k."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from recal.models import ChannelGate, create_model
from recal.models.cifar import PreActBottleneck, WideBasicBlock
from recal.models.resnet import BasicBlock


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, params, paper",
    [
        # option-B projections on the two downsampling shortcuts: +0.01M against the paper's option A
        ("cifar_resnet20", 272_474, 0.27e6),
        ("cifar_resnet56", 855_770, 0.85e6),
        ("cifar_resnet110", 1_730_714, 1.7e6),
        ("preact_resnet164", 1_703_258, 1.7e6),
        ("wrn16_8", 10_961_370, 11.0e6),
        ("wrn28_10", 36_479_194, 36.5e6),
    ],
)
def test_parameter_counts_against_the_papers(name: str, params: int, paper: float) -> None:
    count = _count(create_model(name, 10))
    assert count == params
    assert abs(count - paper) / paper < 0.02


@pytest.mark.parametrize("depth, blocks", [(20, 3), (32, 5), (56, 9), (110, 18)])
def test_cifar_resnet_depths(depth: int, blocks: int) -> None:
    model = create_model(f"cifar_resnet{depth}", 10)
    stages = (model.layer1, model.layer2, model.layer3)
    assert [len(s) for s in stages] == [blocks] * 3
    assert [s[0].conv2.out_channels for s in stages] == [16, 32, 64]
    assert all(isinstance(b, BasicBlock) for s in stages for b in s)
    assert model.layer1[0].downsample is None and model.layer2[0].downsample is not None


def test_resnet164_structure_and_stage1_projection() -> None:
    model = create_model("preact_resnet164", 10)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [18] * 3
    first = model.layer1[0]
    assert isinstance(first, PreActBottleneck)
    # the official CMPE-SE ResNet-164 omits this projection (16 → 64 channels); we do not
    assert first.shortcut is not None and (first.shortcut.in_channels, first.shortcut.out_channels) == (16, 64)
    assert model.layer1[1].shortcut is None
    assert model.fc.in_features == 256


def test_wrn_structure() -> None:
    model = create_model("wrn28_10", 100)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [4] * 3
    assert [s[0].conv2.out_channels for s in (model.layer1, model.layer2, model.layer3)] == [160, 320, 640]
    assert all(isinstance(b, WideBasicBlock) for b in model.layer1)
    assert model.fc.out_features == 100


def test_wrn_dropout_option() -> None:
    model = create_model("wrn16_2", 10, dropout=0.3)
    assert model.layer1[0].dropout.p == 0.3
    assert isinstance(create_model("wrn16_2", 10).layer1[0].dropout, nn.Identity)
    with pytest.raises(ValueError, match=r"'cifar_resnet20'.*'dropout'"):
        create_model("cifar_resnet20", 10, dropout=0.3)


@pytest.mark.parametrize("name, block_index", [("srm_preact_resnet164", 1), ("se_wrn16_2", 1)])
def test_preactivation_gate_sits_after_the_last_conv(name: str, block_index: int, randomize) -> None:
    model = create_model(name, 10)
    block = randomize(model.layer1[block_index]).eval()
    last_conv = block.conv3 if isinstance(block, PreActBottleneck) else block.conv2
    seen: dict[str, Tensor] = {}
    last_conv.register_forward_hook(lambda m, args, out: seen.update(conv=out.clone()))
    block.gate.register_forward_hook(lambda m, args, out: seen.update(gate_in=args[0].clone(), gate_out=out.clone()))
    block.gate.register_gate_hook(lambda m, g: seen.update(gate=g.clone()))
    x = torch.randn(2, last_conv.out_channels, 8, 8)
    with torch.no_grad():
        out = block(x)
    assert torch.equal(seen["gate_in"], seen["conv"])
    torch.testing.assert_close(seen["gate_out"], seen["conv"] * seen["gate"][:, :, None, None])
    # the shortcut is added after the gate; no activation after the addition
    torch.testing.assert_close(out, seen["gate_out"] + x)


@pytest.mark.parametrize(
    "name",
    ["cifar_resnet20", "srm_cifar_resnet20", "se_cifar_resnet56", "ge_cifar_resnet20", "eca_cifar_resnet20",
     "cbam_cifar_resnet20",
     "preact_resnet164", "srm_preact_resnet164", "wrn16_2", "srm_wrn16_2", "ge_wrn16_2"],
)
def test_train_step_at_32_pixels(name: str) -> None:
    model = create_model(name, 10)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_gated_channels() -> None:
    gates = lambda m: [g.channels for g in m.modules() if isinstance(g, ChannelGate)]
    assert gates(create_model("srm_cifar_resnet20", 10)) == [16] * 3 + [32] * 3 + [64] * 3
    assert gates(create_model("srm_preact_resnet164", 10)) == [64] * 18 + [128] * 18 + [256] * 18
    assert gates(create_model("srm_wrn16_8", 10)) == [128] * 2 + [256] * 2 + [512] * 2


def test_stride_in_1x1_is_rejected_for_cifar_models() -> None:
    with pytest.raises(ValueError, match=r"'cifar_resnet20'.*'stride_in_1x1'"):
        create_model("cifar_resnet20", 10, stride_in_1x1=True)
