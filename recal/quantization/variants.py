"""The study's variants: which parts of a network int8 post-training quantization touches.

Every variant starts from torch.ao's default x86 mapping
(``get_default_qconfig_mapping("x86")``: histogram-calibrated uint8 activations with
``reduce_range``, per-channel symmetric int8 weights, the fixed 1/256 output scale of
the quantized sigmoid) and changes it per module with a ``QConfigMapping``:

- ``float_gates``: every gate module (:class:`~recal.layers.gate.ChannelGate`) in float32
  — its input dequantized, the gate and the broadcast ``x * gate`` multiply computed in
  float, the product quantized again for the residual addition;
- ``int8_gates``: the default everywhere: the gate path is int8 wherever an int8 kernel
  exists, the broadcast multiply included (``quantized::mul``); SRM's style pooling has
  no int8 kernel (std) and runs on the dequantized map;
- ``per_tensor``: ``int8_gates`` with one scale per weight tensor instead of per output channel;
- ``float_style``: ``int8_gates`` but SRM's style statistics, the integration reading
  them (:class:`~recal.quantization.style_split.StyleScore`) and the sigmoid in float32, the
  gate quantized for the int8 rescale; not applicable to a network without SRM;
- ``qat``: ``int8_gates`` after a short quantization-aware fine-tune
  (``get_default_qat_qconfig_mapping("x86")``, fake-quantized training).

``observer`` chooses how activations are calibrated: ``histogram`` (the x86 default: a
histogram per tensor and a search for the range that loses least, slow — about 0.2 s per
observed tensor here) or ``minmax`` (the observed range, reduce_range as well; seconds for a
ResNet-20, what the tests use).

The per-block sensitivity (:mod:`recal.quantization.sensitivity`) uses
:func:`single_block_mapping`: the default inside one block, float32 everywhere else.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

import torch
from torch import nn
from torch.ao.quantization import MinMaxObserver, QConfig, QConfigMapping, default_weight_observer
from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping

from recal.analysis.gates import gated_blocks
from recal.errors import InvalidOptionError
from recal.quantization.style_split import style_modules

BACKEND = "x86"
Variant = Literal["float_gates", "int8_gates", "per_tensor", "float_style", "qat"]
Observer = Literal["histogram", "minmax"]
OBSERVERS: tuple[str, ...] = ("histogram", "minmax")
VARIANTS: tuple[str, ...] = ("float_gates", "int8_gates", "per_tensor", "float_style", "qat")
DESCRIPTIONS = {
    "float_gates": "gate modules (and their x·gate multiply) float32, rest int8",
    "int8_gates": "int8 wherever an int8 kernel exists, gates included",
    "per_tensor": "as int8_gates, per-tensor weight scales",
    "float_style": "as int8_gates, SRM's style pooling + integration + sigmoid float32",
    "qat": "as int8_gates, after a short quantization-aware fine-tune",
}


def check_variants(variants: list[str]) -> list[str]:
    """``variants`` unchanged when every one is known and none repeats; else an InvalidOptionError naming it."""
    if not variants:
        raise InvalidOptionError(f"--variants is empty; expected one or more of {list(VARIANTS)}")
    for variant in variants:
        if variant not in VARIANTS:
            raise InvalidOptionError(f"unknown --variants entry {variant!r}; valid choices: {list(VARIANTS)}")
    if len(set(variants)) != len(variants):
        raise InvalidOptionError(f"--variants {variants} repeats a variant")
    return variants


def not_applicable(variant: str, model: nn.Module) -> Optional[str]:
    """Why ``variant`` does not apply to ``model`` (a prepared-for-quantization copy), or None when it does."""
    if variant == "float_style" and not style_modules(model):
        return "not applicable: no SRM style pooling"
    return None


def same_as_int8_gates(variant: str, model: nn.Module) -> Optional[str]:
    """A note where ``variant`` quantizes ``model`` exactly like ``int8_gates`` (no gate module to keep float)."""
    if variant == "float_gates" and not gated_blocks(model):
        return "no gate module: the same network as int8_gates"
    return None


def default_mapping(observer: str = "histogram") -> QConfigMapping:
    """torch.ao's default x86 mapping, its activation observer swapped for a min/max one when asked."""
    mapping = get_default_qconfig_mapping(BACKEND)
    if observer == "minmax":
        swap_default(mapping, activation=MinMaxObserver.with_args(reduce_range=True))
    elif observer != "histogram":
        raise InvalidOptionError(f"unknown --observer {observer!r}; valid choices: {list(OBSERVERS)}")
    return mapping


def swap_default(mapping: QConfigMapping, activation=None, weight=None) -> None:
    """Replace the global qconfig's activation and/or weight observer wherever the mapping uses it.

    The default mapping's object-type entries (transposed convolutions, layer norm) share the
    global qconfig's observer objects; the fixed-scale entries (sigmoid, tanh) do not and stay.
    """
    default = mapping.global_qconfig

    def swapped(qconfig):
        if qconfig is None:
            return None
        return QConfig(activation=activation if activation is not None and qconfig.activation is default.activation
                       else qconfig.activation,
                       weight=weight if weight is not None and qconfig.weight is default.weight else qconfig.weight)
    for object_type, qconfig in list(mapping.object_type_qconfigs.items()):
        mapping.set_object_type(object_type, swapped(qconfig))
    mapping.set_global(swapped(default))


def qconfig_mapping(variant: str, model: nn.Module, observer: str = "histogram") -> QConfigMapping:
    """The QConfigMapping of ``variant`` for ``model`` (the copy that will be traced)."""
    if variant == "qat":  # fake quantizers with moving-average min/max observers: no calibration choice
        return get_default_qat_qconfig_mapping(BACKEND)
    mapping = default_mapping(observer)
    if variant == "per_tensor":
        swap_default(mapping, weight=default_weight_observer)  # per-tensor symmetric int8
    elif variant == "float_gates":
        # a module-name entry beats the default's object-type entries (the sigmoid's fixed scale)
        for name in gated_blocks(model):
            mapping.set_module_name(name, None)
    elif variant == "float_style":
        for name in style_modules(model):
            mapping.set_module_name(name, None)
            # and the sigmoid reading the float score: the quantized sigmoid would quantize its float
            # input with its own fixed output grid (1/256 over [0, 1)), clipping every negative score
            mapping.set_module_name_object_type_order(name.rpartition(".")[0], torch.sigmoid, 0, None)
    elif variant != "int8_gates":
        raise InvalidOptionError(f"unknown variant {variant!r}; valid choices: {list(VARIANTS)}")
    return mapping


def single_block_mapping(block: str, observer: str = "histogram") -> QConfigMapping:
    """The default mapping inside module ``block`` (and its submodules), float32 everywhere else.

    A module-name regex outranks the default's object-type entries, so the sigmoid's
    fixed-scale entry still applies inside the block and nowhere outside it; the
    network's own top-level operations (scope "") match the regex too and stay float.
    """
    mapping = default_mapping(observer)
    mapping.set_module_name_regex(rf"^(?!{re.escape(block)}(\.|$))", None)
    return mapping
