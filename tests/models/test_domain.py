"""Domain-specific recalibration: one gate set per domain, routed by domain ids."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recal.errors import InvalidOptionError
from recal.models import create_model
from recal.models.domain import (DomainSpecific, domain, gate_set_parameters, make_domain_specific,
                                 make_domain_specific_heads, set_domain)
from recal.layers.gate import ChannelGate
from recal.layers.srm import SRM


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["srm_cifar_resnet20", "se_resnet18", "cmpe_se_cifar_resnet20", "ge_cifar_resnet20"])
def test_parameters_are_model_plus_d_minus_1_gate_sets(name):
    model = create_model(name, 10)
    base, gate_set = _count(model), gate_set_parameters(model)
    # a gate set is every parameter of every recalibration module
    assert gate_set == sum(_count(m) for m in model.modules() if isinstance(m, ChannelGate)) > 0
    make_domain_specific(model, 4)
    assert _count(model) == base + 3 * gate_set
    assert gate_set_parameters(model) == gate_set
    head = _count(model.fc)
    make_domain_specific_heads(model, 4)
    assert _count(model) == base + 3 * gate_set + 3 * head


def test_a_gate_set_includes_buffers_and_copies_start_equal():
    model = make_domain_specific(create_model("srm_cifar_resnet20", 10), 3)
    wrapped = [m for m in model.modules() if isinstance(m, DomainSpecific)]
    assert len(wrapped) == 9
    for m in wrapped:
        states = [c.state_dict() for c in m.copies]
        assert set(states[0]) >= {"channel_mask", "cfc.weight", "bn.running_mean", "bn.running_var"}
        assert all(torch.equal(s[k], states[0][k]) for s in states[1:] for k in s)
        assert m.copies[0].cfc.weight is not m.copies[1].cfc.weight


def _gates(model: nn.Module, x: torch.Tensor, d: int) -> list[torch.Tensor]:
    """Every gate of every module for input x routed to domain d (eval mode)."""
    seen: list[torch.Tensor] = []
    handles = [m.copies[d].register_gate_hook(lambda _, g: seen.append(g.detach().clone()))
               for m in model.modules() if isinstance(m, DomainSpecific)]
    with torch.no_grad(), domain(model, d):
        model(x)
    for h in handles:
        h.remove()
    return seen


def test_gates_are_equal_before_and_differ_after_one_step_on_a_mixed_batch(randomize):
    model = make_domain_specific(create_model("srm_cifar_resnet20", 10), 3)
    x = torch.randn(1, 3, 32, 32)
    model.eval()
    before = [_gates(model, x, d) for d in range(3)]
    assert all(torch.equal(a, b) for other in before[1:] for a, b in zip(before[0], other))

    model.train()
    batch, targets = torch.randn(12, 3, 32, 32), torch.randint(0, 10, (12,))
    ids = torch.tensor([0, 1, 2] * 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with domain(model, ids):
        nn.functional.cross_entropy(model(batch), targets).backward()
    optimizer.step()
    model.eval()
    after = [_gates(model, x, d) for d in range(3)]
    for d in (1, 2):
        assert any(not torch.allclose(a, b) for a, b in zip(after[0], after[d]))


def test_mixed_batch_equals_each_domain_on_its_own_sub_batch(randomize):
    module = DomainSpecific(SRM(8), 3)
    for c in module.copies:
        randomize(c)
    module.train()
    x = torch.randn(9, 8, 5, 5)
    ids = torch.tensor([2, 0, 1, 2, 0, 1, 0, 2, 1])
    set_domain(module, ids)
    mixed = module(x)
    for d in range(3):
        reference = module.copies[d](x[ids == d])  # its BatchNorm sees only its own domain
        assert torch.allclose(mixed[ids == d], reference, atol=1e-6)


def test_shortcut_gates_get_the_shortcut_routed_too():
    model = make_domain_specific(create_model("cmpe_se_cifar_resnet20", 10), 2)
    module = next(m for m in model.modules() if isinstance(m, DomainSpecific))
    assert module.takes_shortcut
    model.train()
    with domain(model, torch.tensor([0, 1, 1, 0])):
        assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_a_single_sample_sub_batch_in_training_uses_running_statistics():
    module = DomainSpecific(SRM(4), 2).train()
    set_domain(module, torch.tensor([0, 0, 0, 1]))
    out = module(torch.randn(4, 4, 3, 3))
    assert out.shape == (4, 4, 3, 3) and module.copies[1].training


def test_errors_name_the_problem():
    with pytest.raises(InvalidOptionError, match="ResNet has no recalibration"):
        make_domain_specific(create_model("resnet18", 10), 4)
    model = make_domain_specific(create_model("srm_cifar_resnet20", 10), 2)
    with pytest.raises(InvalidOptionError, match="domain-specific already"):
        make_domain_specific(model, 2)
    with pytest.raises(InvalidOptionError, match=r"domain ids \[0, 5\] outside 0..1"):
        set_domain(model, torch.tensor([0, 5]))
    with pytest.raises(RuntimeError, match="call set_domain"):
        model(torch.randn(2, 3, 32, 32))


def test_one_domain_per_batch_compiles_without_graph_breaks(randomize):
    module = DomainSpecific(randomize(SRM(8)), 3).eval()
    set_domain(module, 2)
    x = torch.randn(2, 8, 4, 4)
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), module.copies[2](x))


def test_whole_model_routes_gates_residuals_and_heads_per_sample(randomize):
    model = make_domain_specific_heads(make_domain_specific(create_model("srm_cifar_resnet20", 10), 3), 3)
    randomize(model).eval()
    x, ids = torch.randn(6, 3, 32, 32), torch.tensor([1, 0, 2, 2, 1, 0])
    with torch.no_grad():
        with domain(model, ids):
            mixed = model(x)
        for d in range(3):
            with domain(model, d):
                assert torch.allclose(mixed[ids == d], model(x[ids == d]), atol=1e-5)
