"""Parse ``Union[int, float]`` options as written: ``1`` stays the int 1, ``0.5`` the float 0.5.

jsonargparse tries the subtypes of a union in the order the annotation lists them, and a
float accepts an integer (``1`` → ``1.0``), so a union that lists float before int never
yields an int. Lightning's Trainer annotates ``limit_{train,val,test}_batches`` (int: that
many batches, float: that fraction) as ``Optional[Union[int, float]]``, but CPython's typing
cache (least-recently used, keyed by equality) treats unions that differ only in order as
one key: subscripting returns whichever equal union was cached first, e.g. Lightning
Fabric's ``Optional[Union[float, int]]``. That happens where Trainer is defined and again
where jsonargparse wraps a None-default option in ``Optional[...]``; what is still cached
then depends on everything imported before (``rich``, in the sweep and folds commands), so
``--trainer.limit_val_batches 1`` meant one batch under ``cli.py`` and all of them under
``python -m recal.commands.sweep``.

:func:`install` makes jsonargparse try int before float in every union, whichever order
the union arrived in; the other subtypes keep their places.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

_INSTALLED = "_recal_int_before_float"


def int_first(subtypes: Sequence[Any]) -> list[Any]:
    """``subtypes`` with ``int`` and ``float`` swapped when float comes first; others in place."""
    subtypes = list(subtypes)
    if int in subtypes and float in subtypes:
        i, f = subtypes.index(int), subtypes.index(float)
        if f < i:
            subtypes[i], subtypes[f] = float, int
    return subtypes


def int_before_float(typehint: Any) -> Any:
    """``typehint`` with :func:`int_first` applied to every union in it, nested ones included."""
    from jsonargparse._typehints import get_typehint_origin, literal_types, rebuild_typehint_args

    args = getattr(typehint, "__args__", None)
    # Literal args are values, not types; classes may carry an unrelated __args__ slot
    if get_typehint_origin(typehint) in literal_types or not isinstance(args, tuple) or not args:
        return typehint
    new_args = [int_before_float(a) for a in args]
    if get_typehint_origin(typehint) is Union:  # typing.Union and int | float alike
        new_args = int_first(new_args)
    if all(new is old for new, old in zip(new_args, args)):
        return typehint
    # rebuilt without subscripting Union, whose cache would hand back the old order
    return rebuild_typehint_args(typehint, tuple(new_args))


def install() -> None:
    """Make jsonargparse (process-wide, once) try int before float in every union it parses."""
    from jsonargparse import _typehints

    if getattr(_typehints, _INSTALLED, False):
        return
    sort_for_parsing = getattr(_typehints, "sort_subtypes_for_union", None)
    if sort_for_parsing is None:
        # another jsonargparse: parsing still works, in the order as annotated
        # (tests/test_numeric_unions.py then fails and points here)
        return

    def subtypes_for_union(subtypes, *args, **kwargs):
        # the order in which a union's subtypes are attempted for one value
        return int_first(sort_for_parsing(subtypes, *args, **kwargs))

    _typehints.sort_subtypes_for_union = subtypes_for_union
    sort_when_added = getattr(_typehints, "sort_unions_in_typehint", None)
    if sort_when_added is not None:  # the type hint an argument keeps (and its --help shows)
        _typehints.sort_unions_in_typehint = lambda typehint: int_before_float(sort_when_added(typehint))
    setattr(_typehints, _INSTALLED, True)
