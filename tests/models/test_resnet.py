"""ImageNet ResNet / ResNeXt (recal/models/resnet.py): torchvision compatibility, layouts, gate placement."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import Tensor, nn

from recal.models import ChannelGate, create_model
from recal.models.resnet import BasicBlock, Bottleneck


@pytest.mark.parametrize(
    "name, reference",
    [
        ("resnet50", torchvision.models.resnet50),
        ("resnet101", torchvision.models.resnet101),
        ("resnet18", torchvision.models.resnet18),
        ("resnext50_32x4d", torchvision.models.resnext50_32x4d),
    ],
)
def test_plain_v1_5_loads_torchvision_weights_and_agrees(name: str, reference) -> None:
    theirs = reference(weights=None).eval()
    ours = create_model(name, stride_in_1x1=False).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert a.shape == (1, 1000)
    assert (a - b).abs().max().item() < 1e-5
    assert a.abs().max().item() > 1e-3  # not a vacuous comparison of zeros


@pytest.mark.parametrize("stride_in_1x1, strides", [(True, ((2, 2), (1, 1))), (False, ((1, 1), (2, 2)))])
def test_stride_in_1x1_moves_the_stage_stride(stride_in_1x1: bool, strides) -> None:
    model = create_model("resnet50", stride_in_1x1=stride_in_1x1)
    for stage in (model.layer2, model.layer3, model.layer4):
        assert (stage[0].conv1.stride, stage[0].conv2.stride) == strides
        assert stage[0].downsample[0].stride == (2, 2)
    assert (model.layer1[0].conv1.stride, model.layer1[0].conv2.stride) == ((1, 1), (1, 1))


def test_default_layout_is_v1_5() -> None:
    assert create_model("resnet50").layer2[0].conv2.stride == (2, 2)


def test_layouts_have_the_same_parameters() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(create_model("srm_resnet50", stride_in_1x1=True)) == count(create_model("srm_resnet50")) == 25617448


@pytest.mark.parametrize("name, blocks, block_type", [
    ("resnet18", [2, 2, 2, 2], BasicBlock), ("resnet34", [3, 4, 6, 3], BasicBlock),
    ("resnet50", [3, 4, 6, 3], Bottleneck), ("resnet101", [3, 4, 23, 3], Bottleneck),
    ("resnet152", [3, 8, 36, 3], Bottleneck),
])
def test_depths(name: str, blocks: list[int], block_type: type) -> None:
    model = create_model(name)
    stages = (model.layer1, model.layer2, model.layer3, model.layer4)
    assert [len(s) for s in stages] == blocks
    assert all(isinstance(b, block_type) for s in stages for b in s)


@pytest.mark.parametrize("prefix", ["se", "srm", "ge", "cmpe_se", "eca"])
@pytest.mark.parametrize("arch, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_gate_sits_after_the_last_bn_before_the_addition(prefix: str, arch: str, last_bn: str, randomize) -> None:
    model = create_model(f"{prefix}_{arch}", 10, input_size=32)
    block = randomize(model.layer2[1]).eval()
    assert isinstance(block.gate, ChannelGate)
    seen: dict[str, Tensor] = {}
    getattr(block, last_bn).register_forward_hook(lambda m, args, out: seen.update(bn=out.clone()))
    block.register_forward_hook(lambda m, args, out: seen.update(block_out=out.clone()))
    block.gate.register_gate_hook(lambda m, g: seen.update(gate=g.clone()))
    x = torch.randn(2, block.conv1.in_channels, 4, 4)
    with torch.no_grad():
        unwatched = block(x)  # the fast path: the gate module is not called as a module
    handle = block.gate.register_forward_hook(
        lambda m, args, out: seen.update(gate_in=args[0].clone(), gate_out=out.clone()))
    with torch.no_grad():
        out = block(x)
    handle.remove()
    # a watched gate module is called on the BN's output and returns the rescaled map, nothing else
    assert torch.equal(seen["gate_in"], seen["bn"])
    torch.testing.assert_close(seen["gate_out"], seen["bn"] * seen["gate"][:, :, None, None])
    torch.testing.assert_close(out, torch.relu(seen["gate_out"] + x))
    torch.testing.assert_close(unwatched, out)


def test_gated_channels_of_resnet50() -> None:
    model = create_model("srm_resnet50")
    gates = [m for m in model.modules() if isinstance(m, ChannelGate)]
    assert [g.channels for g in gates] == [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3


@pytest.mark.parametrize("name", ["srm_resnet50", "se_resnet18", "cmpe_se_resnet50", "eca_resnet18", "cbam_resnet18",
                                  "resnext50_32x4d"])
def test_train_step_at_small_input(name: str) -> None:
    model = create_model(name, 10)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_resnext_block_is_grouped() -> None:
    model = create_model("resnext50_32x4d")
    conv = model.layer1[0].conv2
    assert conv.groups == 32 and conv.in_channels == conv.out_channels == 128


def test_init_is_torchvision_style() -> None:
    model = create_model("srm_resnet50")
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias)) for m in bns)
    std = model.layer1[0].conv1.weight.std().item()
    assert abs(std - (2 / 64) ** 0.5) / (2 / 64) ** 0.5 < 0.1  # kaiming normal, fan_out = 64 · 1 · 1
