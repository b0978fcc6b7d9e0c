"""How a file's state dict differs from a model's, in the phrases recal's load errors are made of.

Two loads report these: resuming a run (recal/tasks/checkpoints.py) and initialising a
backbone from a weights file (recal/tasks/weights.py). Both say the same three things in
the same words — keys the file lacks, keys the model lacks, tensors of another shape — and
list only the first few, since a wrong file differs in hundreds of tensors.
"""

from __future__ import annotations

from typing import Callable, Mapping

from torch import Tensor

__all__ = ["state_dict_differences"]


def _listed(keys: list[str], limit: int = 3) -> str:
    return ", ".join(keys[:limit]) + (f" … (+{len(keys) - limit})" if len(keys) > limit else "")


def _no_note(missing: list[str]) -> str:
    return ""


def state_dict_differences(own: Mapping[str, Tensor], theirs: Mapping[str, Tensor],
                           missing_note: Callable[[list[str]], str] = _no_note) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches of ``theirs`` against ``own``, as phrases.

    An empty list means ``theirs`` loads into ``own`` strictly. ``missing_note`` receives the
    missing keys and returns text to put after "missing from the file" (with its leading space),
    or "" for none: a caller that knows why keys are missing can say how to proceed.
    """
    missing = [k for k in own if k not in theirs]
    unexpected = [k for k in theirs if k not in own]
    shapes = [f"{k}: file {tuple(theirs[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in theirs and theirs[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} key(s) missing from the file{missing_note(missing)}: {_listed(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_listed(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): {_listed(shapes, 2)}")
    return parts
