"""identity_init in networks: gates inserted as the identity leave a network's outputs unchanged.

For recal's own networks (through the config field and ``create_model``) and for torchvision
and timm networks (``recalibrate``): in eval mode, and in one training-mode forward from the same
BatchNorm state, the gated network computes what the network without gates computes. Also:
fusion keeps the factor 2, and the refusals name the option.

Training mode, float32: where a gate's block end absorbs the block's BatchNorm (recal's own
ResNets: SRM / SE / ECA after bn2 / bn3; ``recalibrate`` applies a block's BN before the gate), the fused node computes BN's affine regrouped, so the
network's float32 rounding differs from the plain one's — measured 3e-6 (ResNet-18) and 6e-5
(ResNet-50) max abs at the logits, while the plain float32 networks themselves are 3.5e-6 and
1.5e-4 away from their float64 values (and 4.6e-6 / 2.2e-4 away from themselves run
channels-last). There the tests hold the gated network to the plain one in float64 (1e-12), in
float32 on the readable path (1e-6), and check that the fused float32 network is as close to
the float64 values as the plain float32 network is.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers import ChannelGate, readable_mode
from recal.models import create_model, fuse
from recal.models.config import BackboneConfig
from recal.models.recalibrate import recalibrate
from tests.numerics import relative_difference

SIDE = 64


def _train_forward(model: nn.Module, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """One training-mode forward with the same random draws (dropout); in another dtype, of a copy.

    Training-mode outputs use the batch's statistics: the running ones each forward updates do not matter.
    """
    torch.manual_seed(1)
    model = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    return model.train()(x.to(dtype)).double()


def _check_unchanged(gated: nn.Module, plain: nn.Module, fused_bn: bool) -> None:
    """``gated`` computes what ``plain`` does, in eval and in training mode (see the module docstring)."""
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        assert (gated.eval()(x) - plain.eval()(x)).abs().max() <= 1e-6
    if not fused_bn:
        assert (_train_forward(gated, x) - _train_forward(plain, x)).abs().max() <= 1e-6
        return
    with readable_mode():
        assert (_train_forward(gated, x) - _train_forward(plain, x)).abs().max() <= 1e-6
    truth = _train_forward(plain, x, torch.float64)
    assert (_train_forward(gated, x, torch.float64) - truth).abs().max() <= 1e-12
    gated_error, plain_error = ((_train_forward(m, x) - truth).abs().max() for m in (gated, plain))
    assert gated_error <= 2 * plain_error + 1e-6


def _gates(model: nn.Module) -> list[ChannelGate]:
    return [m for m in model.modules() if isinstance(m, ChannelGate)]


def _plain_with_weights_of(gated: nn.Module, name: str) -> nn.Module:
    """Network ``name`` without gates, carrying the gated network's other weights."""
    plain = create_model(name, 10, input_size=SIDE)
    result = plain.load_state_dict(gated.state_dict(), strict=False)
    assert not result.missing_keys and all(".gate." in key for key in result.unexpected_keys)
    return plain


def test_the_config_field_starts_every_gate_as_the_identity() -> None:
    gated = BackboneConfig(name="srm_resnet18", identity_init=True, input_size=SIDE).build(10)
    assert len(_gates(gated)) == 8 and all(g.amplitude == 2.0 for g in _gates(gated))
    _check_unchanged(gated, _plain_with_weights_of(gated, "resnet18"), fused_bn=True)
    assert all(g.amplitude == 1.0 for g in _gates(BackboneConfig(name="srm_resnet18").build(10)))


@pytest.mark.parametrize("name, options", [("ge_cifar_resnet20", {}), ("ge_cifar_resnet20", dict(extent=4)),
                                           ("cmpe_se_cifar_resnet20", {}), ("eca_cifar_resnet20", {})])
def test_create_model_starts_its_gates_as_the_identity_after_initialising_the_network(name: str, options) -> None:
    # the network's init_weights redraws every convolution, GE's score convolutions included
    gated = create_model(name, 10, input_size=SIDE, identity_init=True, **options)
    _check_unchanged(gated, _plain_with_weights_of(gated, "cifar_resnet20"), fused_bn=name.startswith("eca"))


def test_options_without_a_gate_refuse_identity_init() -> None:
    for name in ("sknet50", "resnest50", "resnet18"):
        with pytest.raises(InvalidOptionError, match="identity_init") as error:
            create_model(name, 10, identity_init=True)
        assert "\n" not in str(error.value)
    with pytest.raises(InvalidOptionError, match="theta_minus.*cannot start as identity"):
        BackboneConfig(name="ge_cifar_resnet20", variant="theta_minus", identity_init=True).build(10)


def test_fuse_folds_the_factor_two(randomize) -> None:
    model = create_model("srm_resnet18", 10, input_size=SIDE, identity_init=True)
    randomize(model, scale=0.2).double().eval()
    fused = fuse(model)
    assert [g.amplitude for g in _gates(fused)] == [2.0] * 8
    assert not any(type(m).__name__ == "SRM" for m in fused.modules())
    x = torch.randn(2, 3, SIDE, SIDE, dtype=torch.float64)
    with torch.no_grad():
        assert relative_difference(fused(x), model(x)) < 1e-10


TORCHVISION = [("resnet18", "srm"), ("resnet18", "se"), ("resnet50", "srm"), ("resnet50", "eca"),
               ("resnext50_32x4d", "srm"), ("wide_resnet50_2", "srm"), ("regnet_x_400mf", "srm"), ("mobilenet_v2", "srm"), ("convnext_tiny", "srm"), ("vgg11_bn", "srm")]


@pytest.mark.parametrize("name, recalibration", TORCHVISION, ids=[f"{n}-{r}" for n, r in TORCHVISION])
def test_identity_gates_leave_a_torchvision_network_unchanged(name: str, recalibration: str) -> None:
    # recalibrate's blocks apply their own BN before the gate: exact in training too, on every path
    extra = dict(stochastic_depth_prob=0.0) if name.startswith("convnext") else {}
    plain = torchvision.models.get_model(name, num_classes=10, **extra)
    gated = recalibrate(copy.deepcopy(plain), recalibration, identity_init=True)
    assert _gates(gated) and all(g.amplitude == 2.0 for g in _gates(gated))
    _check_unchanged(gated, plain, fused_bn=False)


@pytest.mark.parametrize("name", ["resnet50", "regnetx_002", "mobilenetv2_100"])
def test_identity_gates_leave_a_timm_network_unchanged(name: str) -> None:
    import timm

    plain = timm.create_model(name, num_classes=10)
    gated = recalibrate(copy.deepcopy(plain), "srm", identity_init=True)
    assert _gates(gated) and all(g.amplitude == 2.0 for g in _gates(gated))
    _check_unchanged(gated, plain, fused_bn=False)
