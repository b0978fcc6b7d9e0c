"""identity_init: every gate that can starts as exactly the identity, 2 · sigmoid(0) = 1.

Its score layer zeroed and its amplitude 2, a gate module returns its input bit for bit in
eval and in training, and a block end with it — the fused training node included — is the
plain block end; one optimiser step moves the gate off 1, within [0, 2]. GE-θ⁻ has nothing
before its sigmoid to zero and refuses. By default every gate keeps the paper's amplitude 1.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from recal.errors import InvalidOptionError
from recal.layers import block_end, block_end_reference
from recal.models import create_recalibration
from tests.numerics import relative_difference

CHANNELS, SIDE = 32, 8
# every module and variant with a layer before its sigmoid
VARIANTS = {
    "srm_cfc": ("srm", {}),
    "srm_mlp": ("srm", dict(integration="mlp")),
    "se": ("se", {}),
    "eca": ("eca", {}),
    "cbam": ("cbam", {}),
    "ge_theta_global": ("ge", dict(spatial_size=SIDE)),
    **{f"ge_theta_extent{e}": ("ge", dict(extent=e)) for e in (2, 4, 8)},
    "ge_theta_plus_global": ("ge", dict(variant="theta_plus", spatial_size=SIDE)),
    "ge_theta_plus_extent4": ("ge", dict(variant="theta_plus", extent=4)),
    **{f"cmpe_se_{v}": ("cmpe_se", dict(variant=v, maps=2)) for v in ("double_fc", "pair_1x1", "pair_2x1",
                                                                        "folded_3x3")},
}


def _identity_gate(key: str) -> nn.Module:
    name, options = VARIANTS[key]
    return create_recalibration(name, CHANNELS, identity_init=True, **options)


def _arguments(gate: nn.Module, x: torch.Tensor, shortcut: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (x, shortcut) if gate.takes_shortcut else (x,)


def test_twice_the_sigmoid_of_zero_is_exactly_one() -> None:
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        x = torch.randn(4, CHANNELS, SIDE, SIDE).to(dtype)
        assert torch.equal(x * (2.0 * torch.sigmoid(torch.zeros((), dtype=dtype))), x)


@pytest.mark.parametrize("key", VARIANTS)
def test_an_identity_initialised_gate_returns_its_input_exactly(key: str) -> None:
    gate = _identity_gate(key)
    assert gate.amplitude == 2.0 and "amplitude=2" in repr(gate)
    x, shortcut = torch.randn(4, CHANNELS, SIDE, SIDE), torch.randn(4, CHANNELS, SIDE, SIDE)
    for training in (False, True):
        gate.train(training)
        assert torch.equal(gate(*_arguments(gate, x, shortcut)), x), f"training={training}"
        applied = gate.applied_gate(*_arguments(gate, x, shortcut))
        assert torch.equal(applied, torch.ones_like(applied))


def _block_ends(gate: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """(gated output, plain output, input gradients of each, BN running means of each) from one training step."""
    bn = nn.BatchNorm2d(CHANNELS).to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.0)
        bn.bias.normal_(0.0, 0.1)
    plain_bn = copy.deepcopy(bn)
    out = torch.randn(4, CHANNELS, SIDE, SIDE, dtype=dtype, requires_grad=True)
    plain_out = out.detach().clone().requires_grad_()
    shortcut = 0.5 * torch.randn(4, CHANNELS, SIDE, SIDE, dtype=dtype)
    target = torch.randn(4, CHANNELS, SIDE, SIDE, dtype=dtype)
    y = block_end(out, norm=bn, gate=gate, shortcut=shortcut, relu=True)  # SRM, SE, ECA: the fused node
    plain = torch.relu(plain_bn(plain_out) + shortcut)
    (y * target).sum().backward()
    (plain * target).sum().backward()
    return y, plain, out.grad, plain_out.grad, bn.running_mean, plain_bn.running_mean


@pytest.mark.parametrize("key", VARIANTS)
def test_a_block_end_with_an_identity_gate_is_the_plain_block_end_and_one_step_moves_the_gate(key: str) -> None:
    # The fused node regroups BN's affine (z·a + b, its statistics from one pass over z), so in float32 it
    # differs from the plain end by an ulp or two of the output: within 1e-6 for these unit-scale maps
    # (1.9e-6 measured where |y| reaches 8-10); in float64 the two agree to 1e-12.
    y, plain, grad, plain_grad, running_mean, plain_running_mean = _block_ends(_identity_gate(key).double().train(),
                                                                               torch.float64)
    for a, b in ((y, plain), (grad, plain_grad), (running_mean, plain_running_mean)):
        assert (a - b).abs().max() <= 1e-12
    gate = _identity_gate(key).train()
    y, plain, grad, plain_grad, running_mean, plain_running_mean = _block_ends(gate, torch.float32)
    assert (y - plain).abs().max() <= 1e-6
    assert (grad - plain_grad).abs().max() <= 1e-6
    torch.testing.assert_close(running_mean, plain_running_mean)

    torch.optim.SGD(gate.parameters(), lr=0.1).step()
    x, shortcut = torch.randn(4, CHANNELS, SIDE, SIDE), torch.randn(4, CHANNELS, SIDE, SIDE)
    with torch.no_grad():
        moved = gate.eval().applied_gate(*_arguments(gate, x, shortcut))
    assert not torch.equal(moved, torch.ones_like(moved))
    assert moved.min() >= 0 and moved.max() <= 2


@pytest.mark.parametrize("key", ["srm_cfc", "se", "eca", "ge_theta_extent2", "cmpe_se_pair_1x1", "cbam"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "inference"])
def test_every_path_applies_the_amplitude_once_and_shows_hooks_the_applied_gate(key: str, training: bool) -> None:
    # trained away from the identity: the gate ranges over [0, 2]
    gate = _identity_gate(key).double().train(training)
    with torch.no_grad():
        for p in gate.parameters():
            p.normal_(0, 0.5)
    norm = nn.BatchNorm2d(CHANNELS).double().train(training)
    out = torch.randn(4, CHANNELS, SIDE, SIDE, dtype=torch.float64)
    shortcut = torch.randn_like(out)
    with torch.no_grad():
        normed = copy.deepcopy(norm)(out)
        expected = 2 * copy.deepcopy(gate).gate(*_arguments(gate, normed, shortcut))
    results = []
    for end in (block_end, block_end_reference):  # the pooled node (SRM, SE, ECA) or the gated add; the readable end
        ends_gate, ends_norm = copy.deepcopy(gate), copy.deepcopy(norm)
        seen: list[torch.Tensor] = []
        ends_gate.register_gate_hook(lambda module, g: seen.append(g.detach()))
        leaf = out.clone().requires_grad_(training)
        with torch.set_grad_enabled(training):
            y = end(leaf, norm=ends_norm, gate=ends_gate, shortcut=shortcut, relu=True)
        if training:
            y.sum().backward()
        assert len(seen) == 1 and relative_difference(seen[0], expected) < 1e-10
        assert seen[0].max() > 1  # the applied gate, past the sigmoid's [0, 1]
        results.append([y.detach()] + ([leaf.grad] + [q.grad for q in ends_gate.parameters()] if training else []))
    for fast, reference in zip(*results):
        assert relative_difference(fast, reference) < 1e-10


def test_ge_theta_minus_cannot_start_as_identity() -> None:
    for extent in ("global", 4):
        with pytest.raises(InvalidOptionError, match="theta_minus.*cannot start as identity") as error:
            create_recalibration("ge", CHANNELS, identity_init=True, variant="theta_minus", extent=extent)
        assert "\n" not in str(error.value)


def test_by_default_every_gate_has_the_papers_amplitude() -> None:
    for key, (name, options) in VARIANTS.items():
        gate = create_recalibration(name, CHANNELS, **options)
        assert gate.amplitude == 1.0 and "amplitude" not in repr(gate), key
