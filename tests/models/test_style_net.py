"""The style-transfer networks: Johnson et al.'s transformer with a norm switch, and the VGG-16 loss net."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from recal.errors import CheckpointMismatchError, DatasetNotFoundError
from recal.layers.gate import ChannelGate
from recal.layers.se import SE
from recal.layers.srm import SRM
from recal.models.style_net import (NORMS, VGG_LAYERS, TransformerNet, VGG16Features, gram_matrix,
                                    load_vgg16_features, random_vgg16_features, stylize, vgg16_features_layers)

pytestmark = pytest.mark.usefixtures("one_thread")

# pytorch/examples fast_neural_style's TransformerNet has 1,679,235 parameters; BN has the same
# count (affine γ, β per channel); the gates add theirs after each of the 15 BatchNorms.
PARAMS = {"in": 1_679_235, "bn": 1_679_235, "bn_se": 1_704_743, "bn_srm": 1_685_635}


@pytest.mark.parametrize("norm", NORMS)
def test_parameter_counts(norm: str) -> None:
    assert sum(p.numel() for p in TransformerNet(norm).parameters()) == PARAMS[norm]


@pytest.mark.parametrize("norm, gate", [("bn_se", SE), ("bn_srm", SRM)])
def test_a_gate_follows_every_batchnorm(norm: str, gate: type) -> None:
    net = TransformerNet(norm)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    pairs = [m for m in net.modules() if isinstance(m, nn.Sequential) and set(m._modules) == {"bn", "gate"}]
    assert len(bns) == len(pairs) == 3 + 2 * 5 + 2
    assert all(isinstance(p.bn, nn.BatchNorm2d) and isinstance(p.gate, gate) for p in pairs)


@pytest.mark.parametrize("norm, kind", [("in", nn.InstanceNorm2d), ("bn", nn.BatchNorm2d)])
def test_plain_norms_have_no_gates(norm: str, kind: type) -> None:
    net = TransformerNet(norm)
    assert not any(isinstance(m, ChannelGate) for m in net.modules())
    assert sum(isinstance(m, kind) for m in net.modules()) == 15


def test_unknown_norm_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="bn_srm"):
        TransformerNet("ln")


@pytest.mark.parametrize("norm", NORMS)
def test_forward_keeps_multiples_of_four(norm: str) -> None:
    net = TransformerNet(norm, width=8, residual_blocks=1).eval()
    assert net(torch.rand(2, 3, 32, 44) * 255).shape == (2, 3, 32, 44)


@pytest.mark.parametrize("size", [(250, 333), (37, 45), (5, 7)])
def test_stylize_returns_the_input_size(size: tuple[int, int]) -> None:
    net = TransformerNet("bn_srm", width=8, residual_blocks=1).eval()
    with torch.no_grad():
        out = stylize(net, torch.rand(1, 3, *size) * 255)
    assert out.shape == (1, 3, *size)
    assert out.min() >= 0 and out.max() <= 255


def test_without_padding_the_size_would_change() -> None:
    # The reason stylize pads: 250×333 comes out 252×336 from the bare network (NOTES).
    net = TransformerNet("in", width=8, residual_blocks=1)
    assert net(torch.rand(1, 3, 250, 333)).shape[-2:] == (252, 336)


def test_vgg_layers_match_torchvision_vgg16() -> None:
    with torch.device("meta"):  # shapes only: skips initialising the 120M-parameter classifier
        reference = torchvision.models.vgg16(weights=None).features[: VGG_LAYERS["relu4_3"] + 1].state_dict()
    ours = vgg16_features_layers().state_dict()
    assert list(ours) == list(reference)
    assert all(ours[k].shape == reference[k].shape for k in ours)


def test_vgg_features_normalise_0_255_input_like_pytorch_examples() -> None:
    loss_net = random_vgg16_features(seed=1)
    images = torch.rand(2, 3, 32, 32) * 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = loss_net.features[:4]((images / 255 - mean) / std)
    features = loss_net(images)
    torch.testing.assert_close(features["relu1_2"], expected, rtol=1e-4, atol=1e-4)
    assert [tuple(f.shape[1:]) for f in features.values()] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert list(loss_net(images, until="relu2_2")) == ["relu1_2", "relu2_2"]
    assert not any(p.requires_grad for p in loss_net.parameters())


def test_random_vgg_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a, b = random_vgg16_features(3), random_vgg16_features(3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, random_vgg16_features(4).features[0].weight)


@pytest.mark.parametrize("layout", ["full", "features"])
def test_load_vgg16_features_round_trip(tmp_path: Path, layout: str) -> None:
    source = random_vgg16_features(seed=2)
    state = source.features.state_dict()
    if layout == "full":  # torchvision's vgg16 state dict: features.* and the classifier
        state = {**{f"features.{k}": v for k, v in state.items()}, "classifier.0.weight": torch.zeros(2, 2)}
    torch.save(state, tmp_path / "vgg16.pth")
    loaded = load_vgg16_features(tmp_path / "vgg16.pth")
    assert isinstance(loaded, VGG16Features)
    x = torch.rand(1, 3, 16, 16) * 255
    torch.testing.assert_close(loaded(x)["relu4_3"], source(x)["relu4_3"])


def test_wrong_shape_names_the_file_and_the_tensor(tmp_path: Path) -> None:
    state = {f"features.{k}": v for k, v in vgg16_features_layers().state_dict().items()}
    state["features.21.weight"] = torch.zeros(256, 512, 3, 3)
    path = tmp_path / "wrong_shape.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match=str(path)) as info:
        load_vgg16_features(path)
    assert "features.21.weight has shape (256, 512, 3, 3), expected (512, 512, 3, 3)" in str(info.value)


@pytest.mark.parametrize("cfg, batch_norm", [("A", False), ("D", True)])  # VGG-11, VGG-16-BN
def test_other_vgg_models_are_rejected(tmp_path: Path, cfg: str, batch_norm: bool) -> None:
    path = tmp_path / "other_vgg.pth"
    torch.save(torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs[cfg], batch_norm).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=str(path)):
        load_vgg16_features(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "missing.pth")):
        load_vgg16_features(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointMismatchError, match=str(garbage)):
        load_vgg16_features(garbage)


def test_gram_matrix_is_divided_by_chw() -> None:
    f = torch.arange(12, dtype=torch.float32).reshape(1, 2, 2, 3)
    flat = f.reshape(2, 6)
    torch.testing.assert_close(gram_matrix(f)[0], flat @ flat.T / 12)
