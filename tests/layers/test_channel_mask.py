"""The one gate hook: ``channel_mask`` zeroes a channel of a gate module's output, and nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from recal.models import ChannelGate, create_model, create_recalibration

C, H = 32, 4
GATES = [
    ("se", {}),
    ("srm", {}),
    ("srm", dict(pooling=("avg", "std", "max"), integration="mlp")),
    ("srm", dict(pooling=("max",), bn=False)),
    ("eca", {}),
    *[("ge", dict(variant=v, extent=e, spatial_size=H)) for v in ("theta_minus", "theta", "theta_plus") for e in ("global", 2, 4)],
    *[("cmpe_se", dict(variant=v, maps=2)) for v in ("double_fc", "pair_1x1", "pair_2x1", "folded_3x3")],
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for name, options in GATES]


def _run(gate: ChannelGate, x: Tensor, shortcut: Tensor) -> Tensor:
    return gate(x, shortcut) if gate.takes_shortcut else gate(x)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name, options", GATES, ids=IDS)
def test_masking_a_channel_zeroes_exactly_that_channel(name: str, options: dict, training: bool, randomize) -> None:
    gate = randomize(create_recalibration(name, C, **options)).train(training)
    assert torch.equal(gate.channel_mask, torch.ones(C))
    assert "channel_mask" in dict(gate.named_buffers())
    x, shortcut = torch.randn(4, C, H, H), torch.randn(4, C, H, H)
    with torch.no_grad():
        reference = _run(gate, x, shortcut)
        for k in (0, 5, C - 1):
            gate.channel_mask.fill_(1.0)
            gate.channel_mask[k] = 0.0
            masked = _run(gate, x, shortcut)
            assert torch.count_nonzero(masked[:, k]) == 0
            others = [c for c in range(C) if c != k]
            assert torch.equal(masked[:, others], reference[:, others])
            assert torch.count_nonzero(reference[:, k]) > 0


@pytest.mark.parametrize("name, size", [("srm_resnet18", 32), ("se_cifar_resnet20", 8), ("cmpe_se_preact_resnet164", 8),
                                        ("ge_wrn16_2", 8), ("cbam_cifar_resnet20", 8)])
def test_mask_zeroes_the_residual_branch_inside_a_model(name: str, size: int, randomize) -> None:
    """Inside a block the gated residual is fused with the addition (and ReLU): a masked
    channel of the block's output is exactly its shortcut (post-activation: relu of it)."""
    model = create_model(name, 10, input_size=size).eval()
    blocks = [m for m in model.modules() if isinstance(getattr(m, "gate", None), ChannelGate)]
    block = blocks[len(blocks) // 2]
    randomize(block.gate)
    block.gate.channel_mask[3] = 0.0
    seen: list[tuple[Tensor, Tensor]] = []
    block.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    with torch.no_grad():
        model(torch.randn(2, 3, size, size))
        (x, out), = seen
        shortcut = getattr(block, "downsample", None) or getattr(block, "shortcut", None)
        if shortcut is None:
            identity = x
        elif hasattr(block, "downsample"):
            identity = shortcut(x)
        else:  # pre-activation blocks project the pre-activated input
            identity = shortcut(block.relu(block.bn1(x)))
    post_activation = hasattr(block, "downsample")
    expected = torch.relu(identity[:, 3]) if post_activation else identity[:, 3]
    assert torch.equal(out[:, 3], expected)
    other = torch.relu(identity[:, 2]) if post_activation else identity[:, 2]
    assert not torch.equal(out[:, 2], other)


def test_gate_hook_sees_the_gate_and_can_be_removed(randomize) -> None:
    gate = randomize(create_recalibration("srm", C))
    seen: list[Tensor] = []
    handle = gate.register_gate_hook(lambda m, g: seen.append(g))
    x = torch.randn(4, C, H, H)
    out = gate(x)
    assert len(seen) == 1 and seen[0].shape == (4, C)
    torch.testing.assert_close(out, x * seen[0][:, :, None, None])
    handle.remove()
    gate(x)
    assert len(seen) == 1


def test_sk_and_splat_are_not_gate_modules() -> None:
    for name in ("sknet50", "resnest50"):
        assert not any(isinstance(m, ChannelGate) for m in create_model(name).modules())
