"""Style pooling (recal/layers/pooling.py): the statistics SRM, SE and the ablations pool."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from recal.errors import InvalidOptionError
from recal.layers.pooling import POOLING_NAMES, STD_EPS, canonical_pooling, style_pool

ALL_SUBSETS = [c for r in (1, 2, 3) for c in itertools.combinations(POOLING_NAMES, r)]


def test_seven_non_empty_subsets() -> None:
    assert POOLING_NAMES == ("avg", "std", "max")
    assert len(ALL_SUBSETS) == 7


@pytest.mark.parametrize("subset", ALL_SUBSETS)
def test_canonical_order_is_independent_of_the_written_order(subset: tuple[str, ...]) -> None:
    for order in itertools.permutations(subset):
        assert canonical_pooling(list(order)) == subset


def test_canonical_pooling_accepts_a_single_name() -> None:
    assert canonical_pooling("std") == ("std",)


@pytest.mark.parametrize(
    "pooling, words",
    [
        (("avg", "foo"), ["'foo'", "avg", "std", "max"]),
        ((), ["at least one"]),
        (("avg", "avg"), ["twice"]),
        (("AVG",), ["'AVG'", "valid choices"]),
    ],
)
def test_invalid_pooling_raises_a_value_error_naming_the_problem(pooling: tuple[str, ...], words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        canonical_pooling(pooling)
    assert isinstance(info.value, InvalidOptionError)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("subset", ALL_SUBSETS)
def test_statistics_match_their_definitions(subset: tuple[str, ...]) -> None:
    x = torch.randn(3, 5, 4, 6, dtype=torch.float64) * 2 + 1
    t = style_pool(x, subset)
    assert t.shape == (3, 5, len(subset))
    flat = x.flatten(2)
    expected = {
        "avg": flat.mean(2),
        # unbiased variance (divisor HW - 1), as the official SRM code's .var()
        "std": torch.sqrt(((flat - flat.mean(2, keepdim=True)) ** 2).sum(2) / (24 - 1) + 1e-5),
        "max": flat.max(2).values,
    }
    for k, name in enumerate(subset):
        torch.testing.assert_close(t[:, :, k], expected[name], rtol=1e-12, atol=1e-12)


def test_std_eps_is_the_official_value() -> None:
    assert STD_EPS == 1e-5


def test_one_by_one_map_has_zero_variance_not_nan() -> None:
    x = torch.randn(2, 3, 1, 1)
    t = style_pool(x, ("avg", "std", "max"))
    assert torch.isfinite(t).all()
    torch.testing.assert_close(t[:, :, 0], x[:, :, 0, 0])
    torch.testing.assert_close(t[:, :, 1], torch.full((2, 3), math.sqrt(1e-5)))
    torch.testing.assert_close(t[:, :, 2], x[:, :, 0, 0])


def test_one_by_one_map_has_finite_gradients() -> None:
    x = torch.randn(2, 3, 1, 1, requires_grad=True)
    style_pool(x, ("avg", "std")).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_constant_channels_give_the_eps_std() -> None:
    x = torch.full((2, 3, 4, 4), 7.0)
    t = style_pool(x, ("avg", "std"))
    torch.testing.assert_close(t[:, :, 0], torch.full((2, 3), 7.0))
    torch.testing.assert_close(t[:, :, 1], torch.full((2, 3), math.sqrt(1e-5)))


def test_statistics_are_float32_under_bf16_autocast() -> None:
    x = torch.randn(2, 4, 8, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t = style_pool(x, ("avg", "std", "max"))
    assert t.dtype == torch.float32
    torch.testing.assert_close(t, style_pool(x.float(), ("avg", "std", "max")))


def test_float64_input_keeps_float64_statistics() -> None:
    assert style_pool(torch.randn(1, 2, 3, 3, dtype=torch.float64)).dtype == torch.float64


def test_default_pooling_is_mean_and_std() -> None:
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(style_pool(x), style_pool(x, ("avg", "std")))
