"""The per-device choice between recal's fused autograd nodes and the plain composition.

- the table: every node on cpu and cuda, none on device types never measured; an unknown
  path name is refused naming the valid ones; a temporary choice is undone;
- block_end and GE's gather take the fused node exactly where the table lists it for the
  tensors' device type — read off the autograd node that produced the output — and give the
  same output and gradients (float64) either way, in a block and in a whole network.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from recal.errors import InvalidOptionError
from recal.layers import block_end
from recal.layers.kernels import fused_paths, runs_fused, set_fused_paths, using_fused_paths
from recal.layers.kernels.fused_paths import PATHS
from recal.models import create_model, create_recalibration


def test_every_node_runs_on_cpu_and_cuda_and_none_elsewhere() -> None:
    assert fused_paths("cpu") == fused_paths("cuda") == frozenset(PATHS)
    assert set(PATHS) == {"pooled_block_end", "gated_add", "global_dot"}
    for device_type in ("mps", "xpu", "meta", "privateuseone"):
        assert not any(runs_fused(path, device_type) for path in PATHS)


def test_an_unknown_path_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(InvalidOptionError, match=r"unknown fused path 'pooled'; valid choices: \['pooled_block_end'"):
        set_fused_paths("cuda", ["pooled"])
    assert fused_paths("cuda") == frozenset(PATHS)


def test_a_temporary_choice_is_undone() -> None:
    with using_fused_paths("cpu", ["gated_add"]):
        assert fused_paths("cpu") == {"gated_add"}
        with using_fused_paths("mps", PATHS):
            assert runs_fused("global_dot", "mps")
    assert fused_paths("cpu") == frozenset(PATHS) and fused_paths("mps") == frozenset()


def _block(gate_name: str, channels: int = 8, size: int = 6):
    torch.manual_seed(0)
    options = {"spatial_size": size} if gate_name == "ge" else {}
    gate = create_recalibration(gate_name, channels, **options).double().train()
    norm = nn.BatchNorm2d(channels).double().train()
    with torch.no_grad():
        for p in [*gate.parameters(), *norm.parameters()]:
            p.normal_(0, 0.5)
    z = torch.randn(4, channels, size, size, dtype=torch.float64, requires_grad=True)
    shortcut = torch.randn(4, channels, size, size, dtype=torch.float64, requires_grad=True)
    return gate, norm, z, shortcut


def _run(gate, norm, z, shortcut):
    gate, norm = copy.deepcopy(gate), copy.deepcopy(norm)
    z, shortcut = z.detach().requires_grad_(), shortcut.detach().requires_grad_()
    y = block_end(z, norm=norm, gate=gate, shortcut=shortcut, relu=True)
    node = type(y.grad_fn).__name__
    y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
    return node, [y.detach(), z.grad, shortcut.grad, *(p.grad for p in [*gate.parameters(), *norm.parameters()])]


POOLED, GATED = "_PooledBlockEndBackward", "_GatedAddBackward"


@pytest.mark.parametrize("gate_name, fused_node, off, expected", [
    ("srm", POOLED, {"pooled_block_end"}, GATED),  # then only the rescale, addition and ReLU are one node
    ("srm", POOLED, set(PATHS), "ReluBackward0"),
    ("se", POOLED, {"pooled_block_end"}, GATED),
    ("eca", POOLED, set(PATHS), "ReluBackward0"),
    ("ge", GATED, {"gated_add"}, "ReluBackward0"),
    ("cmpe_se", GATED, {"gated_add"}, "ReluBackward0"),
])
def test_a_block_end_takes_the_fused_node_only_where_the_table_lists_it(gate_name, fused_node, off, expected) -> None:
    block = _block(gate_name)
    node, fused = _run(*block)
    assert node == fused_node
    with using_fused_paths("cpu", set(PATHS) - off), using_fused_paths("cuda", PATHS):
        node, plain = _run(*block)  # the table lists every node for cuda, not for these cpu tensors
    assert node == expected
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_ges_gather_takes_its_node_only_where_the_table_lists_it(memory_format) -> None:
    from recal.layers.kernels.global_dot import global_depthwise

    x = torch.randn(3, 5, 4, 4, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    weight = torch.randn(5, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    fused = global_depthwise.eager(x, weight, None)
    assert type(fused.grad_fn).__name__ == "_GlobalDotBackward"
    with using_fused_paths("cpu", set(PATHS) - {"global_dot"}):
        plain = global_depthwise.eager(x, weight, None)
    assert type(plain.grad_fn).__name__ != "_GlobalDotBackward"
    grads = [torch.autograd.grad(z.square().sum(), (x, weight)) for z in (fused, plain)]
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # the node's input gradient is written in the map's own layout
    assert grads[0][0].is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("name", ["srm_cifar_resnet20", "ge_cifar_resnet20"])
def test_a_network_trains_alike_with_and_without_the_nodes(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).double().train()
    x, y = torch.randn(4, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 1, 2, 3])

    def gradients(network):
        network = copy.deepcopy(network)
        nn.functional.cross_entropy(network(x), y).backward()
        return [p.grad for p in network.parameters()]
    fused = gradients(model)
    with using_fused_paths("cpu", []):
        plain = gradients(model)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
