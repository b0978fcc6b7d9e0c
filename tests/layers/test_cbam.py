"""CBAM (recal/layers/cbam.py) against the official formulation; its gate contract, init, options and networks.

The official module (Jongchan/attention-module, MODELS/cbam.py) is transcribed below as its
authors wrote it — a Flatten + Linear MLP called once per pooling, ``avg_pool2d`` and
``max_pool2d`` over the whole map, ``ChannelPool`` as cat(max, mean), BasicConv with its
BatchNorm (eps 1e-5, momentum 0.01) and no ReLU — and recal's CBAM is held to it in float64.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recal.analysis.gates import GateRecorder, gated_blocks
from recal.errors import InvalidOptionError
from recal.layers import CBAM, block_end
from recal.models import BackboneConfig, create_model, create_recalibration, fuse
from tests.numerics import relative_difference

C, H, W = 32, 6, 5


class OfficialChannelGate(nn.Module):
    def __init__(self, gate_channels: int, reduction_ratio: int = 16) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(gate_channels, gate_channels // reduction_ratio), nn.ReLU(),
                                 nn.Linear(gate_channels // reduction_ratio, gate_channels))

    def forward(self, x: Tensor) -> Tensor:
        avg_pool = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        max_pool = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        channel_att_sum = self.mlp(avg_pool) + self.mlp(max_pool)
        return x * torch.sigmoid(channel_att_sum).unsqueeze(2).unsqueeze(3).expand_as(x)


class OfficialBasicConv(nn.Module):
    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, stride=1, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class OfficialSpatialGate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.spatial = OfficialBasicConv()

    def forward(self, x: Tensor) -> Tensor:
        x_compress = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)
        return x * torch.sigmoid(self.spatial(x_compress))


class OfficialCBAM(nn.Module):
    def __init__(self, gate_channels: int, reduction_ratio: int = 16) -> None:
        super().__init__()
        self.ChannelGate = OfficialChannelGate(gate_channels, reduction_ratio)
        self.SpatialGate = OfficialSpatialGate()

    def forward(self, x: Tensor) -> Tensor:
        return self.SpatialGate(self.ChannelGate(x))


# recal's names → the official state-dict keys
OFFICIAL_KEYS = {"fc1": "ChannelGate.mlp.1", "fc2": "ChannelGate.mlp.3", "spatial_conv": "SpatialGate.spatial.conv",
                 "spatial_bn": "SpatialGate.spatial.bn"}


def _official_copy(ours: CBAM) -> OfficialCBAM:
    official = OfficialCBAM(ours.channels, ours.channels // ours.fc1.out_features).to(ours.fc1.weight.dtype)
    state = {}
    for key, value in ours.state_dict().items():
        module, _, rest = key.partition(".")
        if module in OFFICIAL_KEYS:
            state[f"{OFFICIAL_KEYS[module]}.{rest}"] = value
    official.load_state_dict(state)
    return official


def _randomized_cbam(randomize, **options) -> CBAM:
    return randomize(create_recalibration("cbam", C, **options)).double()


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_equals_the_official_module_in_float64(training: bool, randomize) -> None:
    ours = _randomized_cbam(randomize).train(training)
    official = _official_copy(ours).train(training)
    for _ in range(2):  # the second step runs on updated running statistics
        x = (torch.randn(4, C, H, W, dtype=torch.float64) * 2 + 0.5).requires_grad_()
        x_official = x.detach().clone().requires_grad_()
        y, y_official = ours(x), official(x_official)
        assert relative_difference(y, y_official) < 1e-12
        weights = torch.randn_like(y)
        (y * weights).sum().backward()
        (y_official * weights).sum().backward()
        assert relative_difference(x.grad, x_official.grad) < 1e-12
    official_parameters = dict(official.named_parameters())
    for name, parameter in ours.named_parameters():
        module, _, rest = name.partition(".")
        assert relative_difference(parameter.grad, official_parameters[f"{OFFICIAL_KEYS[module]}.{rest}"].grad) < 1e-12
    official_bn = official.SpatialGate.spatial.bn
    for name in ("running_mean", "running_var"):
        assert relative_difference(getattr(ours.spatial_bn, name), getattr(official_bn, name)) < 1e-12


def test_shapes_and_ranges(randomize) -> None:
    cbam = _randomized_cbam(randomize).eval()
    x = torch.randn(3, C, H, W, dtype=torch.float64)
    channel, spatial = cbam.gate(x), cbam.spatial_gate(x)
    assert channel.shape == (3, C) and spatial.shape == (3, 1, H, W)
    assert 0 <= channel.min() and channel.max() <= 1 and 0 <= spatial.min() and spatial.max() <= 1
    assert cbam(x).shape == x.shape and not cbam.spatial and not cbam.rescales_only


def test_structure_and_parameter_count() -> None:
    cbam = CBAM(256)
    assert (cbam.fc1.in_features, cbam.fc1.out_features, cbam.fc2.out_features) == (256, 16, 256)
    assert cbam.spatial_conv.bias is None and cbam.spatial_conv.padding == (3, 3) and cbam.spatial_bn.affine
    mlp, spatial = 2 * 256 * 16 + 16 + 256, 2 * 7 * 7 + 2
    assert sum(p.numel() for p in cbam.parameters()) == mlp + spatial
    with torch.device("meta"):  # shapes only
        assert sum(p.numel() for p in create_model("cbam_resnet50").parameters()) == 28_089_624
        assert sum(p.numel() for p in create_model("se_resnet50").parameters()) + 16 * spatial == 28_089_624


def test_kernel_size_and_reduction_options_reach_the_networks() -> None:
    model = BackboneConfig(name="cbam_cifar_resnet20", kernel_size=3, reduction=4).build(10)
    gates = [m for m in model.modules() if isinstance(m, CBAM)]
    assert len(gates) == 9 and all(g.spatial_conv.kernel_size == (3, 3) and g.spatial_conv.padding == (1, 1)
                                   and g.fc1.out_features == g.channels // 4 for g in gates)
    for bad in (4, 0, True):
        with pytest.raises(InvalidOptionError, match="kernel_size") as error:
            create_recalibration("cbam", C, kernel_size=bad)
        assert "\n" not in str(error.value)


def test_the_official_initialisation_survives_the_backbones() -> None:
    for name in ("cbam_resnet18", "cbam_cifar_resnet20", "cbam_preact_resnet164"):
        gates = [m for m in create_model(name, 10).modules() if isinstance(m, CBAM)]
        assert gates and all(torch.equal(g.spatial_bn.weight, torch.zeros(1)) and not g.fc1.bias.any()
                             and not g.fc2.bias.any() for g in gates), name
    gate = create_recalibration("cbam", C).eval()
    x = torch.randn(2, C, H, W)
    assert torch.equal(gate.spatial_gate(x), torch.full((2, 1, H, W), 0.5))


def test_identity_init_starts_both_halves_at_exactly_one(randomize) -> None:
    for training in (True, False):
        gate = randomize(create_recalibration("cbam", C)).start_as_identity().train(training)
        x = torch.randn(4, C, H, W)
        assert torch.equal(gate(x), x) and gate.amplitude == 2.0
        assert torch.equal(gate.applied_gate(x), torch.ones(4, C))
        assert torch.equal(gate.spatial_gate(x), torch.ones(4, 1, H, W))
    model = create_model("cbam_cifar_resnet20", 10, identity_init=True)
    assert all(g.amplitude == 2.0 and not g.fc2.weight.any() and not g.spatial_bn.weight.any()
               for g in model.modules() if isinstance(g, CBAM))


def test_identity_init_trains_both_halves(randomize) -> None:
    gate = randomize(create_recalibration("cbam", C)).start_as_identity().train()
    x = torch.randn(4, C, H, W)
    (gate(x) * torch.randn_like(x)).sum().backward()
    # the channel half's last layer and the spatial half's BatchNorm learn from the first step on
    assert gate.fc2.weight.grad.abs().sum() > 0 and gate.spatial_bn.weight.grad.abs().sum() > 0


def test_channel_mask_zeroes_the_channel_before_the_spatial_half(randomize) -> None:
    gate = _randomized_cbam(randomize).eval()
    x = torch.randn(4, C, H, W, dtype=torch.float64)
    for k in (0, 7, C - 1):
        gate.channel_mask.fill_(1.0)
        gate.channel_mask[k] = 0.0
        with torch.no_grad():
            out = gate(x)
            refined = x * (gate.gate(x) * gate.channel_mask)[:, :, None, None]
            expected = refined * gate.spatial_gate(refined)
        assert torch.count_nonzero(out[:, k]) == 0
        assert relative_difference(out, expected) < 1e-12


def test_gate_hooks_see_the_channel_gate_once(randomize) -> None:
    gate = _randomized_cbam(randomize).train()
    norm = nn.BatchNorm2d(C).double()
    seen: list[Tensor] = []
    gate.register_gate_hook(lambda module, g: seen.append(g.detach()))
    out = torch.randn(4, C, H, W, dtype=torch.float64)
    fresh_norm = copy.deepcopy(norm)  # block_end moves the running statistics; the batch's are the same
    block_end(out, norm=norm, gate=gate, shortcut=torch.randn_like(out), relu=True)
    assert len(seen) == 1 and seen[0].shape == (4, C)
    with torch.no_grad():
        assert relative_difference(seen[0], gate.gate(fresh_norm(out))) < 1e-12
    model = create_model("cbam_cifar_resnet20", 10).eval()
    blocks = gated_blocks(model)
    with GateRecorder(blocks) as recorder, torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert [recorder.stats[n].channel_means().shape for n in blocks] == [(g.channels,) for g in blocks.values()]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_block_end_equals_the_readable_block_end(training: bool, randomize) -> None:
    results = []
    for fast in (True, False):
        torch.manual_seed(1)
        gate = _randomized_cbam(randomize).train(training)
        norm = randomize(nn.BatchNorm2d(C)).double().train(training)
        out = (torch.randn(4, C, H, W, dtype=torch.float64) * 2 + 1).requires_grad_(training)
        shortcut = torch.randn_like(out).requires_grad_(training)
        with torch.set_grad_enabled(training):
            if fast:
                y = block_end(out.clone(), norm=norm, gate=gate, shortcut=shortcut, relu=True, overwrite=True)
            else:
                y = torch.relu(gate(norm(out)) + shortcut)
        outputs = [y.detach(), norm.running_mean.clone(), gate.spatial_bn.running_var.clone()]
        if training:
            y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
            outputs += [out.grad, shortcut.grad, *(p.grad for m in (gate, norm) for p in m.parameters())]
        results.append(outputs)
    for fast, reference in zip(*results):
        assert relative_difference(fast, reference) < 1e-12


def test_the_module_traces_and_its_trace_computes_what_it_computes(randomize) -> None:
    gate = _randomized_cbam(randomize).eval()
    x = torch.randn(2, C, H, W, dtype=torch.float64)
    traced = torch.fx.symbolic_trace(gate)
    with torch.no_grad():
        assert relative_difference(traced(x), gate(x)) < 1e-12
    called = {node.target for node in traced.graph.nodes if node.op == "call_module"}
    assert {"fc1", "fc2", "spatial_conv", "spatial_bn"} <= called


def test_fuse_merges_the_spatial_convolution_and_its_batchnorm(randomize) -> None:
    model = randomize(create_model("cbam_cifar_resnet20", 10), scale=0.2).double().eval()
    fused = fuse(model)
    gates = [m for m in fused.modules() if isinstance(m, CBAM)]
    assert gates and all(isinstance(g.spatial_bn, nn.Identity) and g.spatial_conv.bias is not None for g in gates)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert relative_difference(fused(x), model(x)) < 1e-10
