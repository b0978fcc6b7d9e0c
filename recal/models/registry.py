"""Names → networks: one entry per recalibration module and per architecture.

Every name and option is checked here, once, with an error that lists what is
valid — never discovered inside a constructor three calls deep. What a module lets a
user set is declared by the module (``user_options``; what it takes from its block,
by its ``from_block``); what a network family takes and its defaults, by its
:class:`Family` entry. The typed config for YAML files (:mod:`recal.models.config`)
is derived from the same declarations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from recal.errors import InvalidOptionError
from recal.layers import (CBAM, CMPESE, ECA, SE, SRM, ChannelGate, GatherExcite, SelectiveKernelConv,
                          SplitAttentionConv)
from recal.layers.block_context import BlockContext
from recal.layers.ghost_norm import check_group_size, use_ghost_batch_norm
from recal.models.cifar import CifarResNet, cifar_resnet, preact_resnet, wide_resnet
from recal.models.libraries import build_library_model, check_library_name, is_library_name
from recal.models.parts import ConvFactory, GateFactory
from recal.models.resnet import BasicBlock, Bottleneck, ResNet

# ------------------------------------------------------------------------- modules

# the order of the typed config's fields follows this table
MODULES: dict[str, type[nn.Module]] = {
    "srm": SRM, "se": SE, "ge": GatherExcite, "cmpe_se": CMPESE, "eca": ECA, "cbam": CBAM,
    "sk": SelectiveKernelConv, "splat": SplitAttentionConv,
}
GATES = tuple(name for name, cls in MODULES.items() if issubclass(cls, ChannelGate))
CONVS = tuple(name for name in MODULES if name not in GATES)


def _choose(kind: str, name: str, valid: tuple[str, ...] | list[str]) -> None:
    if name not in valid:
        raise InvalidOptionError(f"unknown {kind} {name!r}; valid choices: {sorted(valid)}")


def _check_options(name: str, options: dict[str, Any], accepted: tuple[str, ...]) -> None:
    extra = [key for key in options if key not in accepted]
    if extra:
        raise InvalidOptionError(f"recalibration {name!r} does not take option {extra[0]!r}; it takes {list(accepted)}")
    _check_reduction(options)


def _check_reduction(options: dict[str, Any]) -> None:
    # every module divides channels by it: 0 would be a ZeroDivisionError deep in a constructor
    reduction = options.get("reduction")
    if reduction is not None and (isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1):
        raise InvalidOptionError(f"option 'reduction'={reduction!r}: expected a positive integer")


def create_recalibration(name: str, channels: int, identity_init: bool = False, **options: Any) -> ChannelGate:
    """Build gate module ``name`` (se, srm, ge, cmpe_se, eca, cbam) for ``channels`` channels.

    ``options`` are the module's own keyword arguments: what a user sets (e.g.
    ``pooling``, ``integration`` for srm; ``variant``, ``extent`` for ge) and what a
    block would tell it (``spatial_size`` for ge; ``maps``, ``row_width`` for cmpe_se).
    ``identity_init`` starts the gate as exactly the identity
    (:meth:`~recal.layers.gate.ChannelGate.start_as_identity`).
    Unknown names or options raise :class:`InvalidOptionError` listing the valid ones.
    """
    if name in CONVS:
        raise InvalidOptionError(f"{name!r} is a conv replacement, not a gate module: build it with create_conv")
    _choose("recalibration", name, list(GATES))
    gate_class = MODULES[name]
    _check_options(name, options, gate_class.user_options + gate_class.block_options)
    return _initialised(gate_class(channels, **options), identity_init)


def create_conv(name: str, in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, **options: Any) -> nn.Module:
    """Build conv replacement ``name`` (sk, splat) for a bottleneck's 3×3, with its BN and ReLU.

    ``options``: what a user sets and what an architecture fixes (``avd_first`` of ResNeSt-fast).
    """
    if name in GATES:
        raise InvalidOptionError(f"{name!r} is a gate module, not a conv replacement: build it with create_recalibration")
    _choose("conv replacement", name, list(CONVS))
    _check_options(name, options, MODULES[name].user_options + getattr(MODULES[name], "architecture_options", ()))
    return MODULES[name](in_ch, out_ch, stride, groups, **options)


def gate_factory(name: str, identity_init: bool = False, **options: Any) -> GateFactory:
    """A factory that places gate ``name`` in every block; the module takes what it needs from the block.

    ``identity_init``: every gate it builds starts as exactly the identity (amplitude 2, score layer zeroed).
    """
    _choose("recalibration", name, list(GATES))
    gate_class = MODULES[name]
    _check_options(name, options, gate_class.user_options)

    def make(context: BlockContext) -> ChannelGate:
        return _initialised(gate_class.from_block(context, **options), identity_init)

    return make


def _initialised(gate: ChannelGate, identity_init: bool) -> ChannelGate:
    """``gate`` as its paper initialises it, or started as the identity."""
    return gate.start_as_identity() if identity_init else gate


def conv_factory(name: str, fixed: dict[str, Any] | None = None, **options: Any) -> ConvFactory:
    """A factory that replaces each bottleneck's 3×3 with conv ``name``; checks compatibility.

    ``options`` are the user's; ``fixed`` what the architecture sets (ResNeSt-fast's ``avd_first``).
    """
    _choose("conv replacement", name, list(CONVS))
    _check_options(name, options, MODULES[name].user_options)
    options = {**options, **(fixed or {})}

    def make(in_ch: int, out_ch: int, stride: int, groups: int, dilation: int = 1) -> nn.Module:
        if out_ch < 64 or out_ch % groups:
            raise InvalidOptionError(
                f"recalibration {name!r} needs a 3×3 with ≥ 64 channels divisible by its {groups} groups, got {out_ch}"
            )
        if dilation == 1:
            return create_conv(name, in_ch, out_ch, stride, groups, **options)
        # the stage's dilation (replace_stride_with_dilation) is the architecture's, not a user option of the module
        return MODULES[name](in_ch, out_ch, stride, groups, dilation=dilation, **options)

    return make


# ------------------------------------------------------------------------- networks

@dataclass(frozen=True)
class Family:
    """A family of networks: how to build one, what it takes beyond the modules, its defaults.

    ``build(num_classes, make_gate, make_conv, input_size, **architecture, **options)``;
    ``network`` is the class it returns (its ``classifier_name`` names the head);
    ``options`` the backbone options it takes, typed by ``option_types``.
    """

    name: str
    build: Callable[..., nn.Module]
    network: type[nn.Module]
    input_size: int
    options: tuple[str, ...] = ()
    option_types: dict[str, Any] = field(default_factory=dict)

    @property
    def classifier(self) -> str:
        return self.network.classifier_name


def _build_resnet(num_classes, make_gate, make_conv, input_size, stride_in_1x1=None,
                  replace_stride_with_dilation=None, **architecture) -> ResNet:
    return ResNet(**architecture, num_classes=num_classes, stride_in_1x1=bool(stride_in_1x1), make_gate=make_gate,
                  make_conv=make_conv, input_size=input_size, replace_stride_with_dilation=replace_stride_with_dilation)


def _build_cifar(num_classes, make_gate, make_conv, input_size, depth) -> CifarResNet:
    return cifar_resnet(depth, num_classes, make_gate, input_size)


def _build_preact(num_classes, make_gate, make_conv, input_size, depth) -> CifarResNet:
    return preact_resnet(depth, num_classes, make_gate, input_size)


def _build_wide(num_classes, make_gate, make_conv, input_size, depth, widen_factor, dropout=None) -> CifarResNet:
    return wide_resnet(depth, widen_factor, num_classes, make_gate, dropout or 0.0, input_size)


RESNET = Family("resnet", _build_resnet, ResNet, 224, ("stride_in_1x1", "replace_stride_with_dilation"),
                {"stride_in_1x1": bool, "replace_stride_with_dilation": list[bool]})
CIFAR_RESNET = Family("cifar_resnet", _build_cifar, CifarResNet, 32)
PREACT_RESNET = Family("preact_resnet", _build_preact, CifarResNet, 32)
WIDE_RESNET = Family("wide_resnet", _build_wide, CifarResNet, 32, ("dropout",), {"dropout": float})
FAMILIES = (RESNET, CIFAR_RESNET, PREACT_RESNET, WIDE_RESNET)


@dataclass(frozen=True)
class Architecture:
    """A named network of a family; ``recalibration`` fixed for compound models (SKNet, ResNeSt),
    with ``conv_options`` their conv replacement's architectural options."""

    family: Family
    arguments: dict[str, Any]
    recalibration: str | None = None
    conv_options: dict[str, Any] = field(default_factory=dict)

    def takes_conv(self) -> bool:
        """Whether its bottlenecks have a 3×3 that SK or split attention can replace."""
        return self.family is RESNET and self.arguments.get("block") is Bottleneck


ARCHITECTURES: dict[str, Architecture] = {
    "resnet18": Architecture(RESNET, dict(block=BasicBlock, layers=[2, 2, 2, 2])),
    "resnet34": Architecture(RESNET, dict(block=BasicBlock, layers=[3, 4, 6, 3])),
    "resnet50": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 4, 6, 3])),
    "resnet101": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 4, 23, 3])),
    "resnet152": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 8, 36, 3])),
    # ResNet-D ("Bag of Tricks", He et al. 2019): deep stem, average-pool downsampling in the shortcut; timm's names
    "resnet50d": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 4, 6, 3], deep_stem=True, stem_width=32,
                                           avg_down=True)),
    "resnext50_32x4d": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 4, 6, 3], groups=32, width_per_group=4)),
    **{f"cifar_resnet{d}": Architecture(CIFAR_RESNET, dict(depth=d)) for d in (20, 32, 44, 56, 110)},
    "preact_resnet164": Architecture(PREACT_RESNET, dict(depth=164)),
    **{f"wrn{d}_{k}": Architecture(WIDE_RESNET, dict(depth=d, widen_factor=k))
       for d, k in ((16, 4), (16, 8), (22, 10), (28, 10), (40, 4))},
    "sknet50": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 4, 6, 3], groups=32, width_per_group=4), "sk"),
    "resnest50": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 4, 6, 3], deep_stem=True, stem_width=32,
                                           avg_down=True), "splat"),
    # the official ResNeSt-50-fast (2s1x64d): the average pool carries the stride before the split-attention 3×3
    "resnest50_fast": Architecture(RESNET, dict(block=Bottleneck, layers=[3, 4, 6, 3], deep_stem=True, stem_width=32,
                                                avg_down=True), "splat", dict(avd_first=True)),
}
_WRN = re.compile(r"wrn(\d+)_(\d+)$")  # any WRN-d-k, beyond the named ones


def architecture(name: str) -> Architecture | None:
    """The entry of a name without a recalibration prefix, or None."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    match = _WRN.match(name)
    return Architecture(WIDE_RESNET, dict(depth=int(match[1]), widen_factor=int(match[2]))) if match else None


def model_names() -> tuple[str, ...]:
    """Every named model: architectures, each gate's prefixed versions of them, compound models.

    ``create_model`` also accepts any ``wrn{depth}_{k}`` (and its prefixed versions).
    """
    plain = [name for name, entry in ARCHITECTURES.items() if entry.recalibration is None]
    compound = [name for name, entry in ARCHITECTURES.items() if entry.recalibration is not None]
    prefixes = ("cmpe_se", "srm", "se", "ge", "eca", "cbam")  # the listing's order, older names first
    return (*plain, *(f"{p}_{b}" for p in prefixes for b in plain), *compound)


def parse_model_name(name: str) -> tuple[str, str | None]:
    """Split ``srm_resnet50`` into (``resnet50``, ``srm``); unknown names list the valid ones.

    ``torchvision.<name>`` and ``timm.<name>`` (another library's classifier,
    :mod:`recal.models.libraries`) have no prefix: their recalibration is the
    ``recalibration`` option, placed by :func:`recal.models.recalibrate.recalibrate`.
    """
    if is_library_name(name):
        check_library_name(name)
        return name, None
    entry = architecture(name)
    if entry is not None:
        return name, entry.recalibration
    for prefix in sorted(GATES, key=len, reverse=True):  # cmpe_se before se
        base = name[len(prefix) + 1:]
        if name.startswith(prefix + "_") and (entry := architecture(base)) is not None and entry.recalibration is None:
            return base, prefix
    raise InvalidOptionError(f"unknown model {name!r}; valid names: {sorted(model_names())} (and any wrn<depth>_<k>)")


def _reject(arch: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key, value in options.items():
        if value is not None and key not in allowed:
            raise InvalidOptionError(f"model {arch!r} does not take option {key!r}; it takes {list(allowed)}")


def backbone_option_names() -> tuple[str, ...]:
    """The options some network family takes (beyond ``input_size``), in declaration order."""
    return tuple(dict.fromkeys(option for family in FAMILIES for option in family.options))


def create_model(
    name: str,
    num_classes: int = 1000,
    recalibration: str | None = None,
    *,
    stride_in_1x1: bool | None = None,
    input_size: int | None = None,
    dropout: float | None = None,
    bn_group_size: int | None = None,
    replace_stride_with_dilation: list[bool] | None = None,
    **module_options: Any,
) -> nn.Module:
    """Build model ``name`` (e.g. ``srm_resnet50``, ``cifar_resnet56``, ``wrn28_10``, ``sknet50``).

    ``recalibration`` may replace the name's prefix (``resnet50`` +
    ``recalibration="srm"`` is ``srm_resnet50``); ``module_options`` go to the
    recalibration module (``pooling``, ``integration``, ``bn``, ``reduction``,
    ``bias``, ``variant``, ``extent``, ``kernel_size``, and every gate's ``identity_init``), None
    meaning the module's default.
    ``bn_group_size`` (any network, None: off) makes every BatchNorm of the built network —
    the backbone's and the gates' — compute its batch statistics over groups of that many
    images (:mod:`recal.layers.ghost_norm`), as DataParallel's replicas did.
    ``replace_stride_with_dilation`` (ImageNet ResNets; three bools for layer2..4, None: none)
    dilates those stages instead of striding them, as torchvision's option (:mod:`recal.models.resnet`).
    Incompatible combinations raise :class:`InvalidOptionError` naming the pair.
    """
    module_options = {key: value for key, value in module_options.items() if value is not None}
    if bn_group_size is not None:  # before building: a bad value must not cost a network's construction
        check_group_size("option 'bn_group_size'", bn_group_size)
    backbone_options = dict(stride_in_1x1=stride_in_1x1, dropout=dropout,
                            replace_stride_with_dilation=replace_stride_with_dilation)
    model = _network(name, num_classes, recalibration, input_size, backbone_options, module_options)
    return model if bn_group_size is None else use_ghost_batch_norm(model, bn_group_size)


def _network(name: str, num_classes: int, recalibration: str | None, input_size: int | None,
             options: dict[str, Any], module_options: dict[str, Any]) -> nn.Module:
    """The network :func:`create_model` describes (``options``: its backbone options), its BatchNorms plain."""
    arch, prefix = parse_model_name(name)
    if is_library_name(arch):
        return _library_model(arch, num_classes, recalibration, input_size, options, module_options)
    entry = architecture(arch)
    if recalibration is not None and prefix is not None and recalibration != prefix:
        raise InvalidOptionError(f"model {name!r} already uses recalibration {prefix!r}; it cannot also take {recalibration!r}")
    recalibration = recalibration or prefix
    if recalibration is not None:
        _choose("recalibration", recalibration, list(MODULES))
    elif module_options:
        raise InvalidOptionError(f"model {name!r} has no recalibration module, so option {next(iter(module_options))!r} does not apply")
    make_gate = gate_factory(recalibration, **module_options) if recalibration in GATES else None
    make_conv = _conv_for(arch, entry, recalibration, module_options) if recalibration in CONVS else None
    family = entry.family
    _reject(arch, options, family.options)
    if options["stride_in_1x1"] is not None and not takes_stride_in_1x1(arch):
        raise InvalidOptionError(f"model {arch!r} does not take option 'stride_in_1x1': its design puts each stage's "
                                 "stride in the 3×3 and an average pool in the shortcut (ResNet-D)")
    chosen = {key: value for key, value in options.items() if key in family.options and value is not None}
    return family.build(num_classes, make_gate, make_conv, input_size or family.input_size, **entry.arguments, **chosen)


def _library_model(name: str, num_classes: int, recalibration: str | None, input_size: int | None,
                   backbone_options: dict[str, Any], module_options: dict[str, Any]) -> nn.Module:
    """Another library's classifier (random init: weights come through the task's weights option), recalibrated."""
    from recal.models.recalibrate import recalibrate

    _reject(name, backbone_options, ())
    model = build_library_model(name, num_classes)
    if recalibration is None:
        if module_options:
            raise InvalidOptionError(f"model {name!r} has no recalibration module, so option "
                                     f"{next(iter(module_options))!r} does not apply")
        return model
    return recalibrate(model, recalibration, input_size=input_size, **module_options)


def takes_stride_in_1x1(name: str) -> bool:
    """Whether architecture ``name`` has the v1 / v1.5 layout choice (an ImageNet ResNet without ResNet-D's
    average-pool shortcut, which fixes the stride in the 3×3)."""
    entry = architecture(name)
    return entry is not None and entry.family is RESNET and not entry.arguments.get("avg_down")


def _conv_for(arch: str, entry: Architecture, name: str, options: dict[str, Any]) -> ConvFactory:
    if not entry.takes_conv():
        first_width = 64 if entry.family is RESNET else 16 * entry.arguments.get("widen_factor", 1)
        raise InvalidOptionError(
            f"recalibration {name!r} replaces the 3×3 of bottleneck blocks with ≥ 64 channels; model {arch!r} "
            f"has no such block (its first stage is {first_width} channels wide); use it with "
            f"{[a for a, e in ARCHITECTURES.items() if e.takes_conv() and e.recalibration is None]}"
        )
    return conv_factory(name, entry.conv_options, **options)


def default_input_size(name: str) -> int:
    """The input side model ``name`` is built for by default (224 ImageNet, torchvision and timm, 32 CIFAR)."""
    base = parse_model_name(name)[0]
    return 224 if is_library_name(base) else architecture(base).family.input_size
