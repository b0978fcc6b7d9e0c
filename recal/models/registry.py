"""Names → constructors: recalibration modules, conv replacements and models.

Every name and option is checked here, once, with an error that lists what is
valid — never discovered inside a constructor three calls deep. The typed mirror
of these options for configs is :class:`recal.models.config.BackboneConfig`.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from torch import nn

from recal.errors import InvalidOptionError
from recal.models.parts import BlockContext, ConvFactory, GateFactory
from recal.models.cifar import cifar_resnet, preact_resnet, wide_resnet
from recal.layers.cmpe_se import CMPESE
from recal.layers.eca import ECA
from recal.layers.ge import GatherExcite
from recal.layers.gate import ChannelGate
from recal.models.resnet import BasicBlock, Bottleneck, ResNet
from recal.layers.se import SE
from recal.layers.sk import SelectiveKernelConv
from recal.layers.splat import SplitAttentionConv
from recal.layers.srm import SRM

GATES: dict[str, type[ChannelGate]] = {"se": SE, "srm": SRM, "ge": GatherExcite, "cmpe_se": CMPESE, "eca": ECA}
CONVS: dict[str, type[nn.Module]] = {"sk": SelectiveKernelConv, "splat": SplitAttentionConv}
RECALIBRATIONS = (*GATES, *CONVS)

# The options a user sets per module; block-dependent arguments (GE's spatial
# size, CMPE-SE's maps and fold) come from the backbone, not from the user.
USER_OPTIONS: dict[str, tuple[str, ...]] = {
    "se": ("reduction", "bias"),
    "srm": ("pooling", "integration", "bn", "reduction"),
    "ge": ("variant", "extent", "reduction"),
    "cmpe_se": ("variant", "reduction"),
    "eca": (),
    "sk": ("reduction",),
    "splat": ("reduction",),
}
BACKBONE_OPTIONS = ("stride_in_1x1", "input_size", "dropout")


def _choose(kind: str, name: str, valid: tuple[str, ...] | list[str]) -> None:
    if name not in valid:
        raise InvalidOptionError(f"unknown {kind} {name!r}; valid choices: {sorted(valid)}")


def _check_options(name: str, options: dict[str, Any]) -> None:
    positional = 1 if name in GATES else 4  # channels | in_ch, out_ch, stride, groups
    accepted = list(inspect.signature((GATES | CONVS)[name]).parameters)[positional:]
    extra = [key for key in options if key not in accepted]
    if extra:
        raise InvalidOptionError(f"recalibration {name!r} does not take option {extra[0]!r}; it takes {accepted}")


def create_recalibration(name: str, channels: int, **options: Any) -> ChannelGate:
    """Build gate module ``name`` (se, srm, ge, cmpe_se, eca) for ``channels`` channels.

    ``options`` are the module's own keyword arguments (e.g. ``pooling``,
    ``integration`` for srm; ``variant``, ``extent``, ``spatial_size`` for ge;
    ``variant``, ``maps``, ``fold`` for cmpe_se). Unknown names or options raise
    :class:`InvalidOptionError` listing the valid ones.
    """
    if name in CONVS:
        raise InvalidOptionError(f"{name!r} is a conv replacement, not a gate module: build it with create_conv")
    _choose("recalibration", name, list(GATES))
    _check_options(name, options)
    return GATES[name](channels, **options)


def create_conv(name: str, in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, **options: Any) -> nn.Module:
    """Build conv replacement ``name`` (sk, splat) for a bottleneck's 3×3, with its BN and ReLU."""
    if name in GATES:
        raise InvalidOptionError(f"{name!r} is a gate module, not a conv replacement: build it with create_recalibration")
    _choose("conv replacement", name, list(CONVS))
    _check_options(name, options)
    return CONVS[name](in_ch, out_ch, stride, groups, **options)


def gate_factory(name: str, **options: Any) -> GateFactory:
    """A factory that places gate ``name`` in every block, given the block's context."""
    _choose("recalibration", name, list(GATES))
    for key in options:
        if key not in USER_OPTIONS[name]:
            raise InvalidOptionError(f"recalibration {name!r} does not take option {key!r}; it takes {list(USER_OPTIONS[name])}")

    def make(context: BlockContext) -> ChannelGate:
        block_args: dict[str, Any] = {}
        if name == "ge":
            block_args["spatial_size"] = context.spatial_size
        if name == "cmpe_se":
            block_args["maps"] = max(context.inner_channels // 16, 1)
            block_args["fold"] = context.fold
        return create_recalibration(name, context.channels, **options, **block_args)

    return make


def conv_factory(name: str, **options: Any) -> ConvFactory:
    """A factory that replaces each bottleneck's 3×3 with conv ``name``; checks compatibility."""

    def make(in_ch: int, out_ch: int, stride: int, groups: int) -> nn.Module:
        if out_ch < 64 or out_ch % groups:
            raise InvalidOptionError(
                f"recalibration {name!r} needs a 3×3 with ≥ 64 channels divisible by its {groups} groups, got {out_ch}"
            )
        return create_conv(name, in_ch, out_ch, stride, groups, **options)

    return make


# ---------------------------------------------------------------------------- models

IMAGENET_ARCHS: dict[str, dict[str, Any]] = {
    "resnet18": dict(block=BasicBlock, layers=[2, 2, 2, 2]),
    "resnet34": dict(block=BasicBlock, layers=[3, 4, 6, 3]),
    "resnet50": dict(block=Bottleneck, layers=[3, 4, 6, 3]),
    "resnet101": dict(block=Bottleneck, layers=[3, 4, 23, 3]),
    "resnet152": dict(block=Bottleneck, layers=[3, 8, 36, 3]),
    "resnext50_32x4d": dict(block=Bottleneck, layers=[3, 4, 6, 3], groups=32, width_per_group=4),
}
CIFAR_ARCHS = ("cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56", "cifar_resnet110", "preact_resnet164")
NAMED_WRNS = ("wrn16_4", "wrn16_8", "wrn22_10", "wrn28_10", "wrn40_4")
# Models that are an architecture plus a fixed recalibration (and stem).
COMPOUND_MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sknet50": ("resnext50_32x4d", "sk", {}),
    "resnest50": ("resnet50", "splat", dict(deep_stem=True, stem_width=32, avg_down=True)),
}
PREFIXES = ("cmpe_se", "srm", "se", "ge", "eca")
_WRN = re.compile(r"wrn(\d+)_(\d+)$")


def base_names() -> tuple[str, ...]:
    """Architectures without a recalibration prefix."""
    return (*IMAGENET_ARCHS, *CIFAR_ARCHS, *NAMED_WRNS)


def model_names() -> tuple[str, ...]:
    """Every model name the config accepts: bases, prefixed bases, compound models.

    ``create_model`` accepts any ``wrn{depth}_{k}`` beyond the named ones.
    """
    bases = base_names()
    return (*bases, *(f"{p}_{b}" for p in PREFIXES for b in bases), *COMPOUND_MODELS)


def parse_model_name(name: str) -> tuple[str, str | None]:
    """Split ``srm_resnet50`` into (``resnet50``, ``srm``); unknown names list the valid ones."""
    for prefix in PREFIXES:
        if name.startswith(prefix + "_") and _is_base(name[len(prefix) + 1:]):
            return name[len(prefix) + 1:], prefix
    if _is_base(name):
        return name, None
    raise InvalidOptionError(f"unknown model {name!r}; valid names: {sorted(model_names())} (and any wrn<depth>_<k>)")


def _is_base(name: str) -> bool:
    return name in IMAGENET_ARCHS or name in CIFAR_ARCHS or bool(_WRN.match(name))


def _reject(arch: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key, value in options.items():
        if value is not None and key not in allowed:
            raise InvalidOptionError(f"model {arch!r} does not take option {key!r}; it takes {list(allowed)}")


def create_model(
    name: str,
    num_classes: int = 1000,
    recalibration: str | None = None,
    *,
    stride_in_1x1: bool | None = None,
    input_size: int | None = None,
    dropout: float | None = None,
    **module_options: Any,
) -> nn.Module:
    """Build model ``name`` (e.g. ``srm_resnet50``, ``cifar_resnet56``, ``wrn28_10``, ``sknet50``).

    ``recalibration`` may replace the name's prefix (``resnet50`` +
    ``recalibration="srm"`` is ``srm_resnet50``); ``module_options`` go to the
    recalibration module (``pooling``, ``integration``, ``bn``, ``reduction``,
    ``bias``, ``variant``, ``extent``), None meaning the module's default.
    Incompatible combinations raise :class:`InvalidOptionError` naming the pair.
    """
    module_options = {key: value for key, value in module_options.items() if value is not None}
    reduction = module_options.get("reduction")
    # every module divides channels by it: 0 would be a ZeroDivisionError deep in a constructor
    if reduction is not None and (isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1):
        raise InvalidOptionError(f"option 'reduction'={reduction!r}: expected a positive integer")
    compound_stem: dict[str, Any] = {}
    if name in COMPOUND_MODELS:
        arch, prefix, compound_stem = COMPOUND_MODELS[name]
    else:
        arch, prefix = parse_model_name(name)
    if recalibration is not None and prefix is not None and recalibration != prefix:
        raise InvalidOptionError(f"model {name!r} already uses recalibration {prefix!r}; it cannot also take {recalibration!r}")
    recalibration = recalibration or prefix
    if recalibration is not None:
        _choose("recalibration", recalibration, list(RECALIBRATIONS))
    elif module_options:
        raise InvalidOptionError(f"model {name!r} has no recalibration module, so option {next(iter(module_options))!r} does not apply")
    if recalibration in CONVS:
        make_gate, make_conv = None, _conv_for(arch, recalibration, module_options)
    else:
        make_gate = gate_factory(recalibration, **module_options) if recalibration else None
        make_conv = None

    if arch in IMAGENET_ARCHS:
        _reject(arch, dict(dropout=dropout), ())
        spec = IMAGENET_ARCHS[arch]
        return ResNet(**spec, num_classes=num_classes, stride_in_1x1=bool(stride_in_1x1), make_gate=make_gate,
                      make_conv=make_conv, input_size=input_size or 224, **compound_stem)
    _reject(arch, dict(stride_in_1x1=stride_in_1x1), ())
    size = input_size or 32
    if arch == "preact_resnet164":
        _reject(arch, dict(dropout=dropout), ())
        return preact_resnet(164, num_classes, make_gate, size)
    if arch.startswith("cifar_resnet"):
        _reject(arch, dict(dropout=dropout), ())
        return cifar_resnet(int(arch[len("cifar_resnet"):]), num_classes, make_gate, size)
    depth, widen = map(int, _WRN.match(arch).groups())
    return wide_resnet(depth, widen, num_classes, make_gate, dropout or 0.0, size)


def _conv_for(arch: str, name: str, options: dict[str, Any]) -> ConvFactory:
    if arch not in IMAGENET_ARCHS or IMAGENET_ARCHS[arch]["block"] is not Bottleneck:
        first_width = 16 if arch in CIFAR_ARCHS else 64
        if _WRN.match(arch):
            first_width = 16 * int(_WRN.match(arch).group(2))
        raise InvalidOptionError(
            f"recalibration {name!r} replaces the 3×3 of bottleneck blocks with ≥ 64 channels; model {arch!r} "
            f"has no such block (its first stage is {first_width} channels wide); use it with "
            f"{[a for a, s in IMAGENET_ARCHS.items() if s['block'] is Bottleneck]}"
        )
    return conv_factory(name, **options)

