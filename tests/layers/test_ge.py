"""Gather-Excite (recal/layers/ge.py): GE-θ global as in the SRM paper, θ⁻, θ⁺, finite extents."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recal.models import create_model, create_recalibration
from recal.layers.ge import GatherExcite, allow_any_map_size


def _stage_kernels(model: nn.Module, stages: tuple[str, ...]) -> list[int]:
    sizes = []
    for stage in stages:
        kernels = {block.gate.gather[0].kernel_size for block in getattr(model, stage)}
        assert len(kernels) == 1, f"{stage} mixes kernel sizes {kernels}"
        (k,) = kernels
        assert k[0] == k[1]
        sizes.append(k[0])
    return sizes


IMAGENET_STAGES = ("layer1", "layer2", "layer3", "layer4")
CIFAR_STAGES = ("layer1", "layer2", "layer3")


@pytest.mark.parametrize(
    "input_size, kernels",
    [(None, [56, 28, 14, 7]), (224, [56, 28, 14, 7]), (160, [40, 20, 10, 5]), (320, [80, 40, 20, 10])],
)
@pytest.mark.parametrize("stride_in_1x1", [False, True])
def test_global_kernel_follows_the_input_size(input_size: int | None, kernels: list[int], stride_in_1x1: bool) -> None:
    model = create_model("ge_resnet50", input_size=input_size, stride_in_1x1=stride_in_1x1)
    assert _stage_kernels(model, IMAGENET_STAGES) == kernels


@pytest.mark.parametrize("name", ["ge_cifar_resnet20", "ge_preact_resnet164", "ge_wrn16_2"])
def test_cifar_models_size_their_kernels_for_32_pixels(name: str) -> None:
    assert _stage_kernels(create_model(name, 10), CIFAR_STAGES) == [32, 16, 8]


def test_global_gather_is_one_unpadded_depthwise_conv_with_bias() -> None:
    ge = GatherExcite(64, spatial_size=14)
    conv, bn = ge.gather
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    assert conv.groups == 64 and conv.kernel_size == (14, 14) and conv.padding == (0, 0)
    assert conv.bias is not None
    assert sum(p.numel() for p in ge.parameters()) == 64 * 14 * 14 + 64 + 2 * 64


def test_theta_global_is_sigmoid_of_bn_of_a_full_map_dot_product(randomize) -> None:
    ge = randomize(GatherExcite(8, spatial_size=5)).eval()
    x = torch.randn(3, 8, 5, 5)
    conv, bn = ge.gather
    z = (x * conv.weight[:, 0][None]).sum(dim=(2, 3)) + conv.bias
    z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(ge.gate(x), torch.sigmoid(z))


def test_theta_minus_global_is_sigmoid_of_the_mean() -> None:
    ge = GatherExcite(8, variant="theta_minus")
    assert sum(p.numel() for p in ge.parameters()) == 0
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(ge(x), x * torch.sigmoid(x.mean((2, 3)))[:, :, None, None])


def test_theta_minus_finite_extent_is_upsampled_average_pooling() -> None:
    ge = GatherExcite(4, variant="theta_minus", extent=2)
    x = torch.randn(2, 4, 6, 6)
    pooled = F.avg_pool2d(x, 2)
    expected = torch.sigmoid(pooled.repeat_interleave(2, 2).repeat_interleave(2, 3))
    torch.testing.assert_close(ge.gate(x), expected)


@pytest.mark.parametrize("extent, convs", [(2, 1), (4, 2), (8, 3)])
def test_finite_extent_uses_log2_e_strided_depthwise_convs(extent: int, convs: int) -> None:
    ge = GatherExcite(16, variant="theta", extent=extent)
    layers = [m for m in ge.gather if isinstance(m, nn.Conv2d)]
    assert len(layers) == convs
    assert all(m.kernel_size == (3, 3) and m.stride == (2, 2) and m.groups == 16 for m in layers)
    assert sum(isinstance(m, nn.ReLU) for m in ge.gather) == convs - 1
    x = torch.randn(2, 16, 16, 16)
    g = ge.gate(x)
    assert g.shape == x.shape  # spatial gate, upsampled back to H×W
    assert ge(x).shape == x.shape


def test_theta_plus_adds_a_c_over_16_mlp_with_biases() -> None:
    ge = GatherExcite(64, variant="theta_plus", spatial_size=7)
    convs = [m for m in ge.mlp if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(64, 4), (4, 64)]
    assert all(m.bias is not None for m in convs)
    base = sum(p.numel() for p in GatherExcite(64, spatial_size=7).parameters())
    assert sum(p.numel() for p in ge.parameters()) == base + 64 * 4 + 4 + 4 * 64 + 64


@pytest.mark.parametrize("variant", ["theta_minus", "theta", "theta_plus"])
@pytest.mark.parametrize("extent", ["global", 2, 4])
def test_gradcheck_float64(variant: str, extent: int | str, randomize) -> None:
    ge = randomize(GatherExcite(3, variant=variant, extent=extent, spatial_size=4)).double().eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    # fast mode (random projections of the Jacobian): the full check costs seconds per case here
    assert torch.autograd.gradcheck(ge, (x,), fast_mode=True)


def test_forward_at_another_size_raises_naming_both_sizes() -> None:
    model = create_model("ge_resnet50")  # built for 224: layer1 maps are 56×56
    with pytest.raises(ValueError, match=r"56×56.*16×16"):
        model(torch.randn(2, 3, 64, 64))
    cifar = create_model("ge_cifar_resnet20", 10)
    with pytest.raises(ValueError, match=r"32×32.*24×24"):
        cifar(torch.randn(2, 3, 24, 24))


@pytest.mark.parametrize("name, size", [("ge_resnet50", 160), ("ge_resnet18", 320), ("ge_cifar_resnet20", 32)])
def test_forward_and_backward_at_the_built_size(name: str, size: int) -> None:
    model = create_model(name, 10, input_size=size)
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_default_imagenet_forward_at_224() -> None:
    model = create_model("ge_resnet18").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_theta_minus_global_needs_no_input_size() -> None:
    model = create_model("ge_cifar_resnet20", 10, variant="theta_minus")
    assert model(torch.randn(2, 3, 20, 20)).shape == (2, 10)


@pytest.mark.parametrize(
    "options, pattern",
    [
        (dict(variant="theta_max"), r"'theta_max'.*theta_minus.*theta.*theta_plus"),
        (dict(extent=3), r"extent 3.*global.*2, 4, 8"),
        (dict(spatial_size=None), r"spatial_size"),
    ],
)
def test_invalid_options_raise(options: dict, pattern: str) -> None:
    options = {"spatial_size": 7, **options}
    with pytest.raises(ValueError, match=pattern):
        create_recalibration("ge", 16, **options)


def test_the_global_gather_hands_back_a_contiguous_input_gradient() -> None:
    """The block's BN backward reads this gradient; autograd's einsum backward gave it (C, N)-permuted."""
    gate = create_recalibration("ge", 8, spatial_size=5)
    x = torch.randn(3, 8, 5, 5, requires_grad=True)
    seen = []
    y = x * 1.0
    y.register_hook(lambda g: seen.append(g.is_contiguous()))
    gate.gate(y).sum().backward()
    assert seen == [True]


def test_the_global_dot_node_equals_the_readable_einsum() -> None:
    from recal.layers.kernels import readable_mode
    from recal.layers.kernels.global_dot import global_depthwise

    x = torch.randn(3, 8, 5, 5, dtype=torch.float64)
    weight, bias = torch.randn(8, 1, 5, 5, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    results = []
    for readable in (False, True):
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        with readable_mode() if readable else contextlib.nullcontext():
            z = global_depthwise(*leaves)
        dot = type(z.grad_fn.next_functions[0][0]).__name__  # z = dot + bias
        assert (dot == "_GlobalDotBackward") != readable
        z.backward(torch.linspace(-1, 1, z.numel(), dtype=z.dtype).view_as(z))
        results.append([z.detach()] + [t.grad for t in leaves])
    for fast, reference in zip(*results):
        torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["theta", "theta_plus"])
def test_pooled_to_the_built_size_other_maps_gate_as_their_pooled_map(variant: str, randomize) -> None:
    ge = randomize(GatherExcite(8, variant=variant, extent="global", spatial_size=7).eval())
    built = torch.randn(2, 8, 7, 7)
    expected = ge.gate(built)
    assert allow_any_map_size(ge) == 1
    assert torch.equal(ge.gate(built), expected)  # nothing pooled at the built size: bit for bit
    for h, w in ((10, 13), (5, 9)):
        x = torch.randn(2, 8, h, w)
        out = ge(x)
        assert out.shape == x.shape and torch.isfinite(out).all()
        torch.testing.assert_close(ge.gate(x), ge.gate(F.adaptive_avg_pool2d(x, 7)), rtol=0, atol=0)


def test_allow_any_map_size_leaves_finite_extents_alone() -> None:
    model = nn.Sequential(GatherExcite(8, extent=2), GatherExcite(8, extent="global", spatial_size=4))
    assert allow_any_map_size(model) == 1
    assert not model[0].pool_to_built_size and model[1].pool_to_built_size
