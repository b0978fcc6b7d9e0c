"""Classifiers of other libraries by name: ``torchvision.<name>`` and ``timm.<name>``.

A config names one as ``model.backbone.name: torchvision.mobilenet_v2`` or
``timm.efficientnet_b0``; the name is checked when the config is parsed (an unknown one
lists close matches), and the network is built with random weights and the task's
number of classes — pretrained weights come only from a local file through the task's
``weights`` option, never from a download. Its recalibration is placed by
:func:`recal.models.recalibrate.recalibrate`.
"""

from __future__ import annotations

import difflib
from typing import Callable

from torch import nn

from recal.errors import InvalidOptionError

TORCHVISION = "torchvision."
TIMM = "timm."
PREFIXES = (TORCHVISION, TIMM)


def is_library_name(name: str) -> bool:
    """Whether ``name`` names another library's network (``torchvision.…``, ``timm.…``)."""
    return name.startswith(PREFIXES)


def _timm():
    try:
        import timm
    except ImportError:
        raise InvalidOptionError("timm.<name> models need timm: pip install -e '.[timm]'") from None
    return timm


def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _timm_names() -> list[str]:
    return _timm().list_models()


NAMES: dict[str, Callable[[], list[str]]] = {TORCHVISION: _torchvision_names, TIMM: _timm_names}


def check_library_name(name: str) -> None:
    """Raise :class:`InvalidOptionError` unless ``name`` is a classifier of its library; list close ones."""
    prefix = next(p for p in PREFIXES if name.startswith(p))
    valid = NAMES[prefix]()
    model = name[len(prefix):]
    if model not in valid:
        close = difflib.get_close_matches(model, valid, n=5)
        hint = f"; close matches: {[prefix + c for c in close]}" if close else f"; valid: {valid}"
        raise InvalidOptionError(f"unknown {prefix[:-1]} model {name!r}{hint}")


def build_library_model(name: str, num_classes: int) -> nn.Module:
    """``name``'s network with random weights and ``num_classes`` outputs (no download)."""
    check_library_name(name)
    if name.startswith(TIMM):
        return _timm().create_model(name[len(TIMM):], pretrained=False, num_classes=num_classes)
    import torchvision

    return torchvision.models.get_model(name[len(TORCHVISION):], weights=None, num_classes=num_classes)
