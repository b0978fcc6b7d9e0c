"""resnet_from_torchvision(): a torchvision ResNet as recal's own ResNet, computing what it computed.

For each architecture read off a torchvision instance (ResNet-18/50, ResNeXt-50, Wide ResNet-50):
the same state-dict keys and the same outputs in eval and in train mode (and the same BN running
statistics after a training forward); with SRM, the torchvision keys plus the gates' only, and a
training step. Also what is copied besides the weights (mode, dtype, frozen parameters), and the
one-line refusals of what is not an unmodified torchvision ResNet.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from recal.errors import InvalidOptionError
from recal.layers import ChannelGate
from recal.models import fuse, resnet_from_torchvision
from recal.models.recalibrate import recalibrate
from recal.models.resnet import BasicBlock, Bottleneck, ResNet

ARCHITECTURES = {"resnet18": BasicBlock, "resnet50": Bottleneck, "resnext50_32x4d": Bottleneck,
                 "wide_resnet50_2": Bottleneck}
TIGHT = dict(rtol=1e-5, atol=1e-5)


def _torchvision(name: str, **kwargs) -> nn.Module:
    """A torchvision network whose BatchNorms are not at their initial values (eval mode would hide them)."""
    model = torchvision.models.get_model(name, num_classes=10, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.copy_(1 + 0.5 * torch.rand_like(m.running_var))
    return model


def _running_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_converted_network_computes_what_the_torchvision_one_computes(name: str) -> None:
    source = _torchvision(name)
    converted = resnet_from_torchvision(source)
    assert isinstance(converted, ResNet)
    assert all(type(b) is ARCHITECTURES[name] for s in (converted.layer1, converted.layer4) for b in s)
    assert list(converted.state_dict()) == list(source.state_dict())
    x = torch.randn(2, 3, 64, 64)

    source.eval(), converted.eval()
    with torch.no_grad():
        torch.testing.assert_close(converted(x), source(x), **TIGHT)

    source.train(), converted.train()
    torch.testing.assert_close(converted(x), source(x), **TIGHT)
    for (key, ours), theirs in zip(_running_stats(converted).items(), _running_stats(source).values()):
        torch.testing.assert_close(ours, theirs, **TIGHT, msg=key)


@pytest.mark.parametrize("name, gates", [("resnet18", 8), ("resnet50", 16)])
def test_srm_adds_one_gate_per_block_and_only_its_keys(name: str, gates: int) -> None:
    source = _torchvision(name).train()
    converted = resnet_from_torchvision(source, "srm")
    gate_names = [n for n, m in converted.named_modules() if isinstance(m, ChannelGate)]
    assert len(gate_names) == gates
    keys, theirs = converted.state_dict(), source.state_dict()
    assert set(theirs) <= set(keys)
    assert all(any(k.startswith(g + ".") for g in gate_names) for k in set(keys) - set(theirs))
    assert all(torch.equal(keys[k], v) for k, v in theirs.items())

    optimizer = torch.optim.SGD(converted.parameters(), lr=0.1)
    cfc = converted.layer1[0].gate.cfc.weight.detach().clone()
    converted(torch.randn(2, 3, 64, 64)).logsumexp(1).sum().backward()
    optimizer.step()
    assert not torch.equal(converted.layer1[0].gate.cfc.weight, cfc)


def test_mode_dtype_and_frozen_parameters_are_copied_and_the_result_fuses() -> None:
    source = _torchvision("resnet18").double().train()
    source.layer1.eval()
    source.conv1.weight.requires_grad_(False)
    converted = resnet_from_torchvision(source, "ge", input_size=64)
    assert next(converted.parameters()).dtype == torch.float64
    assert converted.training and converted.layer2[0].gate.training
    assert not converted.layer1.training and not converted.layer1[0].gate.training
    assert not converted.conv1.weight.requires_grad and converted.fc.weight.requires_grad
    zero_init = resnet_from_torchvision(torchvision.models.resnet18(zero_init_residual=True))
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in zero_init.layer1)  # not recal's init: torchvision's

    plain = resnet_from_torchvision(source.eval())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fuse(plain)(x), source(x), rtol=1e-10, atol=1e-10)


def _stem_for_grey_images() -> nn.Module:
    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return model


def _head_in_a_sequential() -> nn.Module:
    model = torchvision.models.resnet18()
    model.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 10))
    return model


@pytest.mark.parametrize("make, match", [
    (torchvision.models.mobilenet_v2, r"converts a torchvision ResNet.*got MobileNetV2"),
    (lambda: torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]),
     r"layer3\.1\.conv2 has dilation 2 \(replace_stride_with_dilation\).*no counterpart"),
    (_stem_for_grey_images, r"conv1 is Conv2d\(1, 64.*where recal's ResNet of this shape has Conv2d\(3, 64"),
    (_head_in_a_sequential, r"fc is a Sequential; expected the Linear"),
    (lambda: torchvision.models.resnet18(norm_layer=nn.InstanceNorm2d), r"bn1 is InstanceNorm2d\(64.*BatchNorm2d\(64"),
    (lambda: recalibrate(torchvision.models.resnet18(), "srm"), r"layer1\.0 is a GatedBasicBlock"),
])
def test_what_is_not_an_unmodified_torchvision_resnet_is_refused_in_one_line(make, match: str) -> None:
    with pytest.raises(InvalidOptionError, match=match) as error:
        resnet_from_torchvision(make())
    assert "\n" not in str(error.value)


def test_conv_replacements_and_stray_options_are_refused() -> None:
    model = torchvision.models.resnet18()
    with pytest.raises(InvalidOptionError, match=r"places gate modules.*'sk' replaces each bottleneck's 3×3"):
        resnet_from_torchvision(model, "sk")
    with pytest.raises(InvalidOptionError, match=r"unknown recalibration 'srn'"):
        resnet_from_torchvision(model, "srn")
    with pytest.raises(InvalidOptionError, match=r"option 'pooling'.*none was given"):
        resnet_from_torchvision(model, pooling=["avg"])
