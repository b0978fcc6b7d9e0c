"""``Union[int, float]`` options keep an int an int, whatever order typing's cache handed the union in."""

from __future__ import annotations

import typing
from typing import Iterator, Optional, Union

import pytest
from jsonargparse import ArgumentParser

import recal.commands.folds  # noqa: F401  (imported first, as python -m recal.commands.folds does)
import recal.commands.sweep  # noqa: F401
from recal.cli import create_cli
from recal.numeric_unions import int_before_float, int_first

NoneType = type(None)


def float_first() -> object:
    """``Optional[Union[float, int]]`` as typing's cache may return it for ``Optional[Union[int, float]]``."""
    # built directly: subscripting Union would return whichever order is cached
    return typing._UnionGenericAlias(Union, (float, int, NoneType))


def test_int_moves_before_float_and_nothing_else_moves() -> None:
    assert int_first([float, str, int, NoneType]) == [int, str, float, NoneType]
    assert int_first([int, float]) == [int, float]
    assert int_first([float, str]) == [float, str]
    assert int_before_float(float_first()).__args__ == (int, float, NoneType)
    nested = int_before_float(list[float_first()])  # type: ignore[misc]
    assert nested.__args__[0].__args__ == (int, float, NoneType)


def test_a_float_first_union_parses_1_as_an_int_and_half_as_a_float() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--limit", type=float_first())
    assert type(parser.parse_args(["--limit", "1"]).limit) is int
    assert parser.parse_args(["--limit", "0.5"]).limit == 0.5
    assert type(parser.parse_args(["--limit", "1.0"]).limit) is float  # 1.0 is still "all batches"


@pytest.fixture
def float_first_cached() -> Iterator[None]:
    """typing's cache as an unlucky import order leaves it: ``Optional`` of the union gives float first."""
    # jsonargparse makes Trainer's None-default options Optional[...] again when it adds them,
    # and that subscription returns whichever equal union typing cached first
    for clear in typing._cleanups:
        clear()
    assert Optional[float_first()].__args__[0] is float
    yield
    for clear in typing._cleanups:
        clear()


def parsed_limit(value: str) -> object:
    """``trainer.limit_val_batches`` as cli.py reads ``--trainer.limit_val_batches value``."""
    cli = create_cli(["--config", "quickstart.yaml", "--trainer.limit_val_batches", value], run=False)
    assert cli.trainer.limit_val_batches == cli.config.trainer.limit_val_batches
    return cli.config.trainer.limit_val_batches


def test_limit_val_batches_1_is_one_batch_after_importing_sweep_and_folds() -> None:
    value = parsed_limit("1")
    assert isinstance(value, int) and value == 1
    half = parsed_limit("0.5")
    assert isinstance(half, float) and half == 0.5


def test_limit_val_batches_1_is_one_batch_whatever_typing_cached(float_first_cached: None) -> None:
    value = parsed_limit("1")
    assert isinstance(value, int) and value == 1
    half = parsed_limit("0.5")
    assert isinstance(half, float) and half == 0.5
