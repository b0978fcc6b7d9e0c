"""CMPE-SE (recal/layers/cmpe_se.py): the four variants, the pseudo-images, and the block rule.

The block rule — out = U·g + shortcut, the gate reading both U and the (projected)
shortcut but multiplying U only — is tested on every block type the backbones have.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import Tensor, nn

from recal.models import create_model, create_recalibration
from recal.layers.cmpe_se import CMPE_VARIANTS, CMPESE

VARIANTS = list(CMPE_VARIANTS)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "variant, expected",
    [
        # C = 64, hidden h = 4, m = 2 maps
        ("double_fc", 64 * 4 + 64 * 4 + 8 * 64),
        ("pair_1x1", 2 * 1 + 2 * 2 + 128 * 4 + 4 * 64),
        ("pair_2x1", 2 * 2 + 2 * 2 + 64 * 4 + 4 * 64),
        # folded (2C/16, 16) = (8, 16) → valid 3×3 → (6, 14)
        ("folded_3x3", 2 * 9 + 2 * 2 + 6 * 14 * 4 + 4 * 64),
    ],
)
def test_parameter_counts_and_no_biases(variant: str, expected: int) -> None:
    gate = CMPESE(64, variant=variant, maps=2)
    assert _params(gate) == expected
    for m in gate.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert m.bias is None, f"{variant}: {m} has a bias"


def test_pair_image_stacks_residual_and_identity() -> None:
    gate = CMPESE(8, variant="pair_1x1")
    u, s = torch.arange(8.0)[None], -torch.arange(8.0)[None] - 100
    image = gate.pseudo_image(u, s)
    assert image.shape == (1, 1, 8, 2)
    assert torch.equal(image[0, 0, :, 0], u[0]) and torch.equal(image[0, 0, :, 1], s[0])


@pytest.mark.parametrize("fold", [16, 10])
def test_folded_image_alternates_residual_and_identity_rows(fold: int) -> None:
    c = 4 * fold
    gate = CMPESE(c, variant="folded_3x3", row_width=fold)
    u, s = torch.arange(float(c))[None], 1000 + torch.arange(float(c))[None]
    image = gate.pseudo_image(u, s)
    assert image.shape == (1, 1, 2 * c // fold, fold)
    for group in range(c // fold):
        channels = slice(group * fold, (group + 1) * fold)
        assert torch.equal(image[0, 0, 2 * group], u[0, channels])
        assert torch.equal(image[0, 0, 2 * group + 1], s[0, channels])


@pytest.mark.parametrize("variant", VARIANTS)
def test_gate_formula(variant: str, randomize) -> None:
    gate = randomize(CMPESE(32, variant=variant, maps=3)).eval()
    x, sc = torch.randn(2, 32, 4, 4), torch.randn(2, 32, 4, 4)
    u, s = x.mean((2, 3)), sc.mean((2, 3))
    if variant == "double_fc":
        z = torch.cat((torch.relu(gate.fc_residual(u)), torch.relu(gate.fc_identity(s))), 1)
        expected = torch.sigmoid(gate.fc_out(z))
    else:
        conv, bn = gate.imaging.conv, gate.imaging.bn
        if variant == "folded_3x3":
            image = torch.stack((u.view(2, 2, 16), s.view(2, 2, 16)), 2).reshape(2, 1, 4, 16)
        else:
            image = torch.stack((u, s), 2)[:, None]
        maps = bn(nn.functional.conv2d(image, conv.weight))
        z = maps.mean(1).flatten(1)
        expected = torch.sigmoid(gate.fc2(torch.relu(gate.fc1(z))))
    torch.testing.assert_close(gate.gate(x, sc), expected)
    torch.testing.assert_close(gate(x, sc), x * expected[:, :, None, None])


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradcheck_float64(variant: str, randomize) -> None:
    gate = randomize(CMPESE(8, variant=variant, maps=2, row_width=4, reduction=2)).double().train()
    x = torch.randn(3, 8, 2, 2, dtype=torch.float64, requires_grad=True)
    sc = torch.randn(3, 8, 2, 2, dtype=torch.float64, requires_grad=True)
    # fast mode (random projections of the Jacobian): the full check costs seconds per variant here
    assert torch.autograd.gradcheck(gate, (x, sc), fast_mode=True)


def test_gate_reads_the_shortcut(randomize) -> None:
    gate = randomize(CMPESE(32, variant="pair_2x1", maps=2)).eval()
    x = torch.randn(2, 32, 4, 4)
    assert not torch.allclose(gate.gate(x, torch.randn_like(x)), gate.gate(x, torch.randn_like(x)))


def test_missing_or_mismatched_shortcut_raises() -> None:
    gate = CMPESE(16)
    x = torch.randn(2, 16, 4, 4)
    with pytest.raises(ValueError, match="shortcut"):
        gate.gate(x)
    with pytest.raises(TypeError, match="shortcut"):
        gate(x)
    with pytest.raises(ValueError, match=r"\(2, 16, 4, 4\).*\(2, 16, 2, 2\)"):
        gate(x, torch.randn(2, 16, 2, 2))


def test_unknown_variant_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'triple_fc'.*double_fc.*pair_1x1.*pair_2x1.*folded_3x3"):
        create_recalibration("cmpe_se", 64, variant="triple_fc")


def test_folded_variant_needs_a_3x3_image() -> None:
    # a 16-channel CIFAR basic block folds into a 2×16 image
    with pytest.raises(ValueError, match="folded_3x3"):
        create_model("cmpe_se_cifar_resnet20", 10, variant="folded_3x3")


def _gates(model: nn.Module) -> list[CMPESE]:
    return [m for m in model.modules() if isinstance(m, CMPESE)]


def test_resnet164_maps_and_fold() -> None:
    gates = _gates(create_model("cmpe_se_preact_resnet164", 10))
    assert [g.maps for g in gates] == [1] * 18 + [2] * 18 + [4] * 18
    assert [g.channels for g in gates] == [64] * 18 + [128] * 18 + [256] * 18
    assert {g.row_width for g in gates} == {16}


def test_wrn28_10_maps_and_fold() -> None:
    gates = _gates(create_model("cmpe_se_wrn28_10", 10, variant="folded_3x3"))
    assert [g.maps for g in gates] == [10] * 4 + [20] * 4 + [40] * 4
    # the official (20, C/10) folded image
    images = {g.channels: g.pseudo_image(torch.zeros(1, g.channels), torch.zeros(1, g.channels)).shape[2:] for g in gates}
    assert images == {160: (20, 16), 320: (20, 32), 640: (20, 64)}


# ------------------------------------------------------------------ the block rule

Post = Callable[[Tensor], Tensor]


def _blocks() -> list[tuple[str, nn.Module, Callable[[nn.Module, Tensor], Tensor], Post, tuple[int, ...]]]:
    """(id, block, independent shortcut, output activation, input shape) for every block type."""
    cases = []
    for variant in ("double_fc", "pair_1x1", "pair_2x1"):
        m = create_model("cmpe_se_cifar_resnet20", 10, variant=variant)
        post_shortcut = lambda b, x: x if b.downsample is None else b.downsample(x)
        cases += [
            (f"basic-identity-{variant}", m.layer1[0], post_shortcut, torch.relu, (2, 16, 8, 8)),
            (f"basic-projection-{variant}", m.layer2[0], post_shortcut, torch.relu, (2, 16, 8, 8)),
        ]
    for variant in VARIANTS:
        m = create_model("cmpe_se_resnet50", variant=variant)
        post_shortcut = lambda b, x: x if b.downsample is None else b.downsample(x)
        pre_shortcut = lambda b, x: x if b.shortcut is None else b.shortcut(torch.relu(b.bn1(x)))
        p = create_model("cmpe_se_preact_resnet164", 10, variant=variant)
        w = create_model("cmpe_se_wrn16_2", 10, variant=variant)
        identity = lambda t: t
        cases += [
            (f"bottleneck-projection-{variant}", m.layer1[0], post_shortcut, torch.relu, (2, 64, 6, 6)),
            (f"bottleneck-identity-{variant}", m.layer1[1], post_shortcut, torch.relu, (2, 256, 6, 6)),
            (f"bottleneck-strided-{variant}", m.layer2[0], post_shortcut, torch.relu, (2, 256, 6, 6)),
            (f"preact-projection-{variant}", p.layer1[0], pre_shortcut, identity, (2, 16, 8, 8)),
            (f"preact-identity-{variant}", p.layer1[1], pre_shortcut, identity, (2, 64, 8, 8)),
            (f"preact-strided-{variant}", p.layer2[0], pre_shortcut, identity, (2, 64, 8, 8)),
            (f"wrn-projection-{variant}", w.layer1[0], pre_shortcut, identity, (2, 16, 8, 8)),
            (f"wrn-identity-{variant}", w.layer1[1], pre_shortcut, identity, (2, 32, 8, 8)),
            (f"wrn-strided-{variant}", w.layer2[0], pre_shortcut, identity, (2, 32, 8, 8)),
        ]
    return cases


BLOCKS = _blocks()


@pytest.mark.parametrize("case", BLOCKS, ids=[c[0] for c in BLOCKS])
def test_gate_multiplies_the_residual_only(case, randomize, monkeypatch) -> None:
    _, block, shortcut_of, post, shape = case
    block = randomize(block).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        shortcut = shortcut_of(block, x)
    projection = block.downsample if hasattr(block, "downsample") else block.shortcut
    assert (projection is None) == ("identity" in case[0])
    seen: dict[str, Tensor] = {}
    block.gate.register_forward_pre_hook(lambda m, args: seen.update(u=args[0].clone(), s=args[1].clone()))
    block.gate.register_gate_hook(lambda m, g: seen.update(g=g.clone()))

    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(seen["s"], shortcut, rtol=0, atol=0)  # the gate sees the projected shortcut
    torch.testing.assert_close(out, post(seen["u"] * seen["g"][:, :, None, None] + shortcut))

    # a gate of zeros leaves exactly the shortcut, a random gate scales U only
    monkeypatch.setattr(block.gate, "gate", lambda u, s: torch.zeros(u.shape[:2]))
    with torch.no_grad():
        assert torch.equal(block(x), post(shortcut))
    r = torch.rand(shape[0], seen["u"].shape[1])
    monkeypatch.setattr(block.gate, "gate", lambda u, s: r)
    with torch.no_grad():
        torch.testing.assert_close(block(x), post(seen["u"] * r[:, :, None, None] + shortcut))


@pytest.mark.parametrize("name, size", [("cmpe_se_cifar_resnet20", 16), ("cmpe_se_preact_resnet164", 8), ("cmpe_se_wrn16_2", 16)])
def test_models_train_step(name: str, size: int) -> None:
    model = create_model(name, 10)
    out = model(torch.randn(2, 3, size, size))
    out.sum().backward()
    assert out.shape == (2, 10) and all(p.grad is not None for g in _gates(model) for p in g.parameters())
