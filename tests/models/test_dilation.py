"""Dilated last stages (replace_stride_with_dilation): torchvision's arithmetic, gates sized to the real maps."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.fx import symbolic_trace

from recal.errors import InvalidOptionError
from recal.layers import GatherExcite, SelectiveKernelConv, SplitAttentionConv
from recal.models import BackboneConfig, create_model

OS8 = [False, True, True]


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def stage_sides(model: nn.Module, size: int) -> dict[str, int]:
    sides = {}
    hooks = [getattr(model, s).register_forward_hook(lambda m, a, out, s=s: sides.update({s: out.shape[-1]}))
             for s in ("layer1", "layer2", "layer3", "layer4")]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return sides


def test_output_stride_8_gives_28_by_28_layer4_maps_at_224() -> None:
    model = create_model("resnet50", 10, replace_stride_with_dilation=OS8)
    assert stage_sides(model, 224) == {"layer1": 56, "layer2": 28, "layer3": 28, "layer4": 28}
    assert stage_sides(create_model("resnet18", 10, replace_stride_with_dilation=[False, False, True]), 224) == {
        "layer1": 56, "layer2": 28, "layer3": 14, "layer4": 14}


def test_the_default_and_all_false_are_todays_network() -> None:
    plain = create_model("resnet50", 10)
    assert stage_sides(plain, 64)["layer4"] == 2
    off = create_model("resnet50", 10, replace_stride_with_dilation=[False, False, False])
    assert [(n, m.dilation, m.stride) for n, m in off.named_modules() if isinstance(m, nn.Conv2d)] == \
        [(n, m.dilation, m.stride) for n, m in plain.named_modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "srm_resnet50", "se_resnet50", "cbam_resnet50",
                                  "sknet50", "resnest50"])
def test_dilation_leaves_the_parameter_count_unchanged(name: str) -> None:
    assert parameters(create_model(name, 1000, replace_stride_with_dilation=OS8)) == parameters(create_model(name))


def test_conv_dilations_strides_and_paddings_equal_torchvisions_layer_by_layer() -> None:
    ours = create_model("resnet50", 1000, replace_stride_with_dilation=OS8)
    theirs = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=OS8)
    convs = lambda m: {n: (c.dilation, c.stride, c.padding) for n, c in m.named_modules() if isinstance(c, nn.Conv2d)}
    assert convs(ours) == convs(theirs)
    assert convs(ours)["layer3.0.conv2"] == ((1, 1), (1, 1), (1, 1))  # the first block keeps the previous dilation
    assert convs(ours)["layer3.1.conv2"] == ((2, 2), (1, 1), (2, 2))
    assert convs(ours)["layer4.0.conv2"] == ((2, 2), (1, 1), (2, 2))
    assert convs(ours)["layer4.2.conv2"] == ((4, 4), (1, 1), (4, 4))
    # same tensors, same function
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


def test_basic_blocks_dilate_as_timms_do() -> None:
    import timm  # torchvision refuses dilation in BasicBlock; timm (a dev dependency) dilates it

    ours = create_model("resnet18", 1000, replace_stride_with_dilation=OS8)
    theirs = timm.create_model("resnet18", pretrained=False, output_stride=8)
    convs = lambda m: {n: (c.dilation, c.stride, c.padding) for n, c in m.named_modules() if isinstance(c, nn.Conv2d)}
    assert convs(ours) == convs(theirs)
    assert convs(ours)["layer3.0.conv1"][0] == (1, 1) and convs(ours)["layer3.0.conv2"][0] == (2, 2)


def test_ge_global_kernels_are_sized_to_the_dilated_maps() -> None:
    model = create_model("ge_resnet50", 10, replace_stride_with_dilation=OS8)
    kernels = {name.split(".")[0]: m.gather[0].kernel_size for name, m in model.named_modules()
               if isinstance(m, GatherExcite)}
    assert kernels == {"layer1": (56, 56), "layer2": (28, 28), "layer3": (28, 28), "layer4": (28, 28)}
    with torch.no_grad():  # the gates run at their built size: no pooling, no size error
        assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_sk_and_split_attention_take_the_stage_dilation() -> None:
    sk = create_model("sknet50", 10, replace_stride_with_dilation=OS8)
    convs = {n: m for n, m in sk.named_modules() if isinstance(m, SelectiveKernelConv)}
    assert [b[0].dilation for b in convs["layer4.1.conv2"].branches] == [(4, 4), (8, 8)]
    assert [b[0].dilation for b in convs["layer2.0.conv2"].branches] == [(1, 1), (2, 2)]
    splat = create_model("resnest50", 10, replace_stride_with_dilation=OS8)
    convs = {n: m for n, m in splat.named_modules() if isinstance(m, SplitAttentionConv)}
    assert convs["layer3.1.conv2"].conv.dilation == (2, 2) and convs["layer3.1.conv2"].conv.padding == (2, 2)
    assert isinstance(convs["layer3.0.conv2"].avd, nn.Identity)  # the stride it would have carried is gone
    assert stage_sides(sk, 64)["layer4"] == 8 and stage_sides(splat, 64)["layer4"] == 8


@pytest.mark.parametrize("name", ["ge_resnet50", "srm_resnet18", "resnest50"])
def test_dilated_networks_trace_and_the_trace_computes_what_they_compute(name: str, randomize) -> None:
    model = randomize(create_model(name, 10, input_size=64, replace_stride_with_dilation=OS8), scale=0.2)
    model = model.double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(symbolic_trace(model)(x), model(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, message", [
    ("cifar_resnet20", "model 'cifar_resnet20' does not take option 'replace_stride_with_dilation'"),
    ("wrn16_4", "model 'wrn16_4' does not take option 'replace_stride_with_dilation'"),
    ("torchvision.resnet18", "does not take option 'replace_stride_with_dilation'"),
])
def test_other_families_refuse_dilation_in_one_line(name: str, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message) as info:
        create_model(name, 10, replace_stride_with_dilation=OS8)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", [[True], [False, True, True, True], [0, 1, 1]])
def test_a_malformed_flag_list_is_refused_when_the_config_is_made(value: list) -> None:
    with pytest.raises(InvalidOptionError, match=r"model\.backbone\.replace_stride_with_dilation=.*expected 3 booleans"):
        BackboneConfig(name="resnet50", replace_stride_with_dilation=value)


def test_the_config_builds_a_dilated_backbone() -> None:
    model = BackboneConfig(name="srm_resnet18", replace_stride_with_dilation=OS8).build(5)
    assert stage_sides(model, 64)["layer4"] == 8
