"""SE (recal/layers/se.py): structure, formula, bias switch, and its place in the models."""

from __future__ import annotations

import pytest
import torch

from recal.models import create_model, create_recalibration
from recal.layers.se import SE


def test_structure_with_reduction_16() -> None:
    se = SE(256)
    assert (se.fc1.in_features, se.fc1.out_features) == (256, 16)
    assert (se.fc2.in_features, se.fc2.out_features) == (16, 256)
    assert sum(p.numel() for p in se.parameters()) == 256 * 16 + 16 + 16 * 256 + 256


def test_bias_off_drops_both_biases() -> None:
    se = SE(256, bias=False)
    assert se.fc1.bias is None and se.fc2.bias is None
    assert sum(p.numel() for p in se.parameters()) == 2 * 256 * 16


def test_hidden_width_is_not_rounded() -> None:
    # timm rounds C/16 to a multiple of 8; the SE paper's counts do not
    assert SE(64 * 3).fc1.out_features == 12
    assert SE(16).fc1.out_features == 1


def test_gate_is_the_se_formula(randomize) -> None:
    se = randomize(SE(32, reduction=4))
    x = torch.randn(3, 32, 5, 7)
    s = x.mean(dim=(2, 3))
    g = torch.sigmoid(se.fc2(torch.relu(se.fc1(s))))
    torch.testing.assert_close(se.gate(x), g)
    torch.testing.assert_close(se(x), x * g[:, :, None, None])


def test_se_resnet50_places_one_gate_per_bottleneck() -> None:
    model = create_model("se_resnet50")
    ses = [m for m in model.modules() if isinstance(m, SE)]
    assert [m.channels for m in ses] == [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3


def test_bias_option_reaches_the_model() -> None:
    with_bias = sum(p.numel() for p in create_model("se_cifar_resnet20", 10).parameters())
    without = sum(p.numel() for p in create_model("se_cifar_resnet20", 10, bias=False).parameters())
    channels = [16] * 3 + [32] * 3 + [64] * 3
    assert with_bias - without == sum(c // 16 + c for c in channels)


def test_reduction_option() -> None:
    assert create_recalibration("se", 64, reduction=8).fc1.out_features == 8


def test_unknown_se_option_names_the_module_and_option() -> None:
    with pytest.raises(ValueError, match=r"'se'.*'pooling'"):
        create_model("se_resnet50", pooling=["avg"])
