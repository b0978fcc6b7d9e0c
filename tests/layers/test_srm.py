"""SRM (recal/layers/srm.py) against the official formulation, its init, numerics and options."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from benchmarks.official_srm import OfficialSRM
from recal.models import create_model, create_recalibration
from recal.layers.pooling import POOLING_NAMES
from recal.layers.srm import SRM

ALL_SUBSETS = [c for r in (1, 2, 3) for c in itertools.combinations(POOLING_NAMES, r)]
CIFAR_RESNET20_GATED_CHANNELS = [16] * 3 + [32] * 3 + [64] * 3


def _pair(channels: int, dtype: torch.dtype, randomize) -> tuple[SRM, OfficialSRM]:
    ours = randomize(SRM(channels)).to(dtype)
    ref = OfficialSRM(channels).to(dtype)
    with torch.no_grad():
        ref.cfc.copy_(ours.cfc.weight)
    # BatchNorm1d over (N, C) and the official BatchNorm2d over (N, C, 1, 1) share their keys
    ref.bn.load_state_dict(ours.bn.state_dict())
    return ours, ref


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("training", [True, False])
def test_equals_official_formulation(training: bool, dtype: torch.dtype, tol: float, randomize) -> None:
    ours, ref = _pair(16, dtype, randomize)
    ours.train(training), ref.train(training)
    for _ in range(2):  # the second step runs on updated running statistics
        x = (torch.randn(4, 16, 7, 5) * 3 + 1).to(dtype)
        torch.testing.assert_close(ours(x), ref(x), rtol=tol, atol=tol)
    torch.testing.assert_close(ours.bn.running_mean, ref.bn.running_mean, rtol=tol, atol=tol)
    torch.testing.assert_close(ours.bn.running_var, ref.bn.running_var, rtol=tol, atol=tol)


def test_gradients_equal_official_formulation(randomize) -> None:
    ours, ref = _pair(8, torch.float64, randomize)
    x = torch.randn(3, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    w = torch.randn(3, 8, 5, 5, dtype=torch.float64)
    (ours(x) * w).sum().backward()
    (ref(x_ref) * w).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.cfc.weight.grad, ref.cfc.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.bn.weight.grad, ref.bn.weight.grad, rtol=1e-10, atol=1e-10)


def test_four_c_parameters_and_zero_init() -> None:
    srm = SRM(64)
    assert sum(p.numel() for p in srm.parameters()) == 4 * 64
    assert srm.cfc.weight.shape == (64, 2)
    assert torch.equal(srm.cfc.weight, torch.zeros(64, 2))
    assert not any(name.endswith("bias") and "cfc" in name for name, _ in srm.named_parameters())


@pytest.mark.parametrize("training", [True, False])
def test_gates_are_exactly_one_half_at_init_in_a_model(training: bool) -> None:
    model = create_model("srm_resnet18").train(training)
    gates: list[Tensor] = []
    srms = [m for m in model.modules() if isinstance(m, SRM)]
    assert len(srms) == 8
    for m in srms:
        m.register_gate_hook(lambda module, g: gates.append(g))
    model(torch.randn(2, 3, 32, 32))
    assert len(gates) == 8
    for g in gates:
        assert torch.equal(g, torch.full_like(g, 0.5))


def test_output_is_half_the_input_at_init() -> None:
    x = torch.randn(4, 8, 6, 6)
    assert torch.equal(SRM(8)(x), x * 0.5)


def test_finite_on_one_by_one_maps(randomize) -> None:
    srm = randomize(SRM(8)).train()
    x = torch.randn(4, 8, 1, 1, requires_grad=True)
    out = srm(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert torch.isfinite(srm.cfc.weight.grad).all()


def test_finite_on_constant_channels(randomize) -> None:
    srm = randomize(SRM(8)).train()
    x = torch.full((4, 8, 5, 5), 3.0, requires_grad=True)
    out = srm(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("training", [True, False])
def test_finite_and_close_under_bf16_autocast(training: bool, randomize) -> None:
    srm = randomize(SRM(16)).train(training)
    x = torch.randn(4, 16, 8, 8) * 4 + 100  # large means: a bf16 variance would be useless
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = srm(x.to(torch.bfloat16))
        g = srm.gate(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    # the statistics are float32, so the gate only sees bf16's rounding of the input
    torch.testing.assert_close(g, srm.gate(x.to(torch.bfloat16).float()), rtol=1e-5, atol=1e-5)


def test_model_trains_under_bf16_autocast() -> None:
    model = create_model("srm_cifar_resnet20", 10)
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().logsumexp(1).sum().backward()
    assert torch.isfinite(out.float()).all()
    srms = [m for m in model.modules() if isinstance(m, SRM)]
    assert all(torch.isfinite(m.cfc.weight.grad).all() and m.cfc.weight.grad.abs().sum() > 0 for m in srms)


def test_gradcheck_float64_train_mode(randomize) -> None:
    srm = randomize(SRM(4)).double().train()
    x = torch.randn(3, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(srm, (x,))


@pytest.mark.parametrize("pooling", ALL_SUBSETS)
@pytest.mark.parametrize("integration", ["cfc", "mlp"])
def test_every_pooling_and_integration_builds_runs_and_backpropagates(pooling: tuple[str, ...], integration: str) -> None:
    plain = create_model("cifar_resnet20", 10)
    model = create_model("srm_cifar_resnet20", 10, pooling=list(pooling), integration=integration)
    srms = [m for m in model.modules() if isinstance(m, SRM)]
    assert [m.channels for m in srms] == CIFAR_RESNET20_GATED_CHANNELS
    assert all(m.pooling == pooling and m.integration == integration for m in srms)
    d = len(pooling)
    if integration == "cfc":
        per_module = [c * d + 2 * c for c in CIFAR_RESNET20_GATED_CHANNELS]
    else:
        per_module = [(d * c) * (c // 16) + c // 16 + (c // 16) * c + c + 2 * c for c in CIFAR_RESNET20_GATED_CHANNELS]
    delta = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters())
    assert delta == sum(per_module)
    x = torch.randn(2, 3, 16, 16)
    model(x).logsumexp(1).sum().backward()
    grads = [m.cfc.weight.grad if integration == "cfc" else m.mlp.fc1.weight.grad for m in srms]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_bn_off_drops_the_batchnorm() -> None:
    srm = SRM(32, bn=False)
    assert isinstance(srm.bn, nn.Identity)
    assert sum(p.numel() for p in srm.parameters()) == 2 * 32
    x = torch.randn(2, 32, 4, 4)
    assert torch.equal(srm(x), x * 0.5)


def test_mlp_integration_is_the_ablation_mlp(randomize) -> None:
    srm = randomize(SRM(32, pooling=("avg", "max"), integration="mlp")).eval()
    assert (srm.mlp.fc1.in_features, srm.mlp.fc1.out_features) == (64, 2)
    assert (srm.mlp.fc2.in_features, srm.mlp.fc2.out_features) == (2, 32)
    x = torch.randn(3, 32, 5, 5)
    flat = x.flatten(2)
    t = torch.stack((flat.mean(2), flat.amax(2)), dim=2).flatten(1)
    z = srm.mlp.fc2(torch.relu(srm.mlp.fc1(t)))
    torch.testing.assert_close(srm.gate(x), torch.sigmoid(srm.bn(z)))


def test_unknown_pooling_in_a_model_raises_naming_it_and_the_choices() -> None:
    with pytest.raises(ValueError) as info:
        create_model("srm_cifar_resnet20", 10, pooling=("avg", "foo"))
    message = str(info.value)
    assert "'foo'" in message and all(name in message for name in ("avg", "std", "max"))


def test_unknown_integration_raises_listing_choices() -> None:
    with pytest.raises(ValueError, match=r"'attention'.*cfc.*mlp"):
        create_recalibration("srm", 16, integration="attention")
