"""Ghost BatchNorm: per-group batch statistics, the first group's running statistics, plain BN otherwise."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers import GhostBatchNorm1d, GhostBatchNorm2d, block_end, block_end_reference, use_ghost_batch_norm
from recal.layers.kernels.pooled_block_end import absorbable_norm
from recal.models import create_recalibration
from tests.numerics import relative_difference

PLAIN = {GhostBatchNorm2d: nn.BatchNorm2d, GhostBatchNorm1d: nn.BatchNorm1d}
SHAPES = {GhostBatchNorm2d: (3, 5, 5), GhostBatchNorm1d: (3,)}  # image maps; (N, C) scores as SRM's


def _pair(ghost: type, group_size: int, momentum: float | None = 0.1) -> tuple[nn.Module, nn.Module]:
    """A ghost BatchNorm and a plain one with the same random affine."""
    plain = PLAIN[ghost](3, momentum=momentum).double()
    with torch.no_grad():
        plain.weight.normal_()
        plain.bias.normal_()
    grouped = ghost(3, group_size=group_size, momentum=momentum).double()
    grouped.load_state_dict(plain.state_dict())
    return grouped, plain


def _images(ghost: type, n: int) -> Tensor:
    return torch.randn(n, *SHAPES[ghost], dtype=torch.float64) * 2 + 1


@pytest.mark.parametrize("ghost", list(SHAPES))
@pytest.mark.parametrize("n, k", [(12, 4), (10, 4)], ids=["groups_divide", "remainder_group"])
def test_each_group_is_normalised_as_a_batchnorm_of_its_own_would(ghost: type, n: int, k: int) -> None:
    grouped, plain = _pair(ghost, k)
    x = _images(ghost, n).requires_grad_()
    y = grouped(x)
    gradient = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    y.backward(gradient)
    # k consecutive images per group, the remainder last: each through a fresh copy of the plain BN
    expected, reference_x, weight_grad, bias_grad = [], x.detach().clone().requires_grad_(), 0, 0
    for group, group_gradient in zip(reference_x.split(k), gradient.split(k)):
        alone = copy.deepcopy(plain)
        out = alone(group)
        out.backward(group_gradient)
        expected.append(out.detach())
        weight_grad, bias_grad = weight_grad + alone.weight.grad, bias_grad + alone.bias.grad
    for got, want in ((y.detach(), torch.cat(expected)), (x.grad, reference_x.grad),
                      (grouped.weight.grad, weight_grad), (grouped.bias.grad, bias_grad)):
        assert relative_difference(got, want) < 1e-12


@pytest.mark.parametrize("ghost", list(SHAPES))
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
def test_running_statistics_are_those_of_a_batchnorm_that_saw_only_the_first_group(ghost: type, momentum) -> None:
    grouped, plain = _pair(ghost, 4, momentum)
    for _ in range(3):
        x = _images(ghost, 12)
        grouped(x)
        plain(x[:4])
    for key, value in plain.state_dict().items():
        assert torch.equal(grouped.state_dict()[key], value), key
    assert int(grouped.num_batches_tracked) == 3


@pytest.mark.parametrize("ghost", list(SHAPES))
def test_eval_mode_and_a_batch_within_one_group_are_plain_batchnorm(ghost: type) -> None:
    grouped, plain = _pair(ghost, 8)
    x = _images(ghost, 6)  # no larger than one group
    assert torch.equal(grouped(x), plain(x))
    assert all(torch.equal(a, b) for a, b in zip(grouped.buffers(), plain.buffers()))
    grouped.eval()
    plain.eval()
    x = _images(ghost, 20)
    assert torch.equal(grouped(x), plain(x))


def test_the_class_swap_keeps_every_key_value_and_hook() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2), nn.BatchNorm1d(2))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    seen = []
    model[1].register_forward_hook(lambda *_: seen.append(True))
    use_ghost_batch_norm(model, 2)
    assert (type(model[1]), type(model[4])) == (GhostBatchNorm2d, GhostBatchNorm1d)
    assert model[1].group_size == model[4].group_size == 2 and "group_size=2" in repr(model)
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())
    model.load_state_dict(before)  # a checkpoint of the plain network loads, strictly
    model(torch.randn(4, 3, 3, 3))
    assert seen == [True]
    assert use_ghost_batch_norm(model, 3)[1].group_size == 3  # a second call changes the group size


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "32"])
def test_a_group_size_that_is_not_a_positive_integer_is_one_line_naming_it(bad) -> None:
    with pytest.raises(InvalidOptionError, match=r"^group_size=.*: expected a positive integer[^\n]*$"):
        GhostBatchNorm2d(4, group_size=bad)
    with pytest.raises(InvalidOptionError, match=r"^bn_group_size=.*: expected a positive integer[^\n]*$"):
        use_ghost_batch_norm(nn.Sequential(nn.BatchNorm2d(4)), bad)


def test_a_batchnorm_that_cannot_be_grouped_is_named() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4))
    with pytest.raises(InvalidOptionError, match=r"^bn_group_size=4: cannot group the statistics of 1 \(SyncBatchNorm\)"):
        use_ghost_batch_norm(model, 4)


def test_the_fused_srm_block_end_keeps_one_node_around_a_ghost_batchnorm() -> None:
    """The ghost block BN is applied before the node, the ghost score BN runs inside its callback: both exact."""
    results = []
    for end in (block_end, block_end_reference):
        torch.manual_seed(0)
        gate = create_recalibration("srm", 16).double().train()
        norm = nn.BatchNorm2d(16).double()
        with torch.no_grad():
            for p in [*gate.parameters(), *norm.parameters()]:
                p.normal_(0, 0.5)
        use_ghost_batch_norm(gate, 4)
        use_ghost_batch_norm(norm, 4)
        out = (torch.randn(12, 16, 5, 5, dtype=torch.float64) * 2 + 1).requires_grad_()
        shortcut = torch.randn_like(out).requires_grad_()
        assert not absorbable_norm(norm, out)
        y = end(out, norm=norm, gate=gate, shortcut=shortcut, relu=True)
        if end is block_end:
            assert type(y.grad_fn).__name__ == "_PooledBlockEndBackward"
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
        grads = [p.grad for m in (gate, norm) for p in m.parameters()]
        results.append([y.detach(), out.grad, shortcut.grad, *grads, *gate.buffers(), *norm.buffers()])
    for fast, reference in zip(*results):
        assert relative_difference(fast, reference) < 1e-10
