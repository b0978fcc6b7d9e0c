"""A torchvision ResNet as recal's own: ``resnet_from_torchvision(torchvision.models.resnet50(), "srm")``.

:func:`recal.models.recalibrate.recalibrate` keeps a torchvision network and its classes and
places each gate through a subclass of the torchvision block; it takes any network it knows the
blocks of, modified or not, and each block applies its own BatchNorm before the gate (so that an
identity-started gate changes nothing, bit for bit). This converter is for the unmodified
torchvision ResNet / ResNeXt / Wide ResNet: it reads the architecture off the instance, builds
recal's :class:`recal.models.resnet.ResNet` of that shape (what ``create_model`` builds for
``resnet50``, ``srm_resnet50`` …) and copies every weight and buffer into it. What the result has
that a recalibrated torchvision network does not:

- recal's blocks, written top to bottom, each handing its last BatchNorm to
  :func:`recal.layers.block_end.block_end`, which in training runs BN → gate → addition → ReLU as
  one autograd node for SRM, SE and ECA, the BN absorbed into the gate's statistics
  (the fused training path; timings in benchmarks/RESULTS.md);
- the classifier interface (``get_classifier``, ``reset_classifier``) and ``forward_features``;
- the state-dict names of ``create_model``'s ResNets: torchvision's, plus ``layer<s>.<i>.gate.*`` per block.

The architecture is read by structure, then checked leaf by leaf (each module's repr: channels,
kernel, stride, BN's eps and momentum …) against the network built, so that a changed stem, a
replaced head or another norm layer is refused by name instead of loading into a network that
computes something else. Dilated ResNets (``replace_stride_with_dilation``) have no counterpart in
recal's ResNet and are refused; ``recalibrate`` takes them.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models import resnet as torchvision_resnet

from recal.errors import InvalidOptionError
from recal.layers import ChannelGate
from recal.models.registry import CONVS, GATES, RESNET, gate_factory
from recal.models.resnet import BasicBlock, Bottleneck, ResNet

_BLOCKS = {torchvision_resnet.BasicBlock: BasicBlock, torchvision_resnet.Bottleneck: Bottleneck}
_STAGES = ("layer1", "layer2", "layer3", "layer4")
_NAME = "resnet_from_torchvision"


def resnet_from_torchvision(model: torchvision_resnet.ResNet, recalibration: str | None = None, *,
                            input_size: int | None = None, **options: Any) -> ResNet:
    """recal's :class:`~recal.models.resnet.ResNet` with ``model``'s architecture, weights, mode, device and dtype.

    ``recalibration`` (a gate module of the registry: srm, se, ge, eca …) puts it into every block, freshly
    initialised, with ``options`` its user options (``pooling``, ``reduction`` …); ``input_size``
    sizes GE's global kernel (default 224, as for ``create_model``). Every state-dict entry of
    ``model`` is loaded; the only entries left at their initial values are the gates'. The input
    model is left untouched. Anything that is not an unmodified torchvision ResNet / ResNeXt /
    Wide ResNet, or an entry that does not load, raises :class:`InvalidOptionError` naming it.
    """
    block = _check_source(model)
    if recalibration in CONVS:
        raise InvalidOptionError(f"{_NAME} places gate modules ({', '.join(GATES)}); {recalibration!r} replaces "
                                 "each bottleneck's 3×3 convolution, so torchvision's weights of it would not load")
    make_gate = gate_factory(recalibration, **options) if recalibration is not None else None
    if make_gate is None and options:
        raise InvalidOptionError(f"{_NAME}: option {next(iter(options))!r} applies to a recalibration module, "
                                 "and none was given")
    first = model.layer1[0]
    groups = first.conv2.groups
    # torchvision's bottleneck width is int(planes · width_per_group / 64) · groups, with planes = 64 in layer1
    width_per_group = first.conv1.out_channels // groups if block is Bottleneck else 64
    converted = RESNET.build(model.fc.out_features, make_gate, None, input_size or RESNET.input_size, block=block,
                             layers=[len(getattr(model, stage)) for stage in _STAGES], groups=groups,
                             width_per_group=width_per_group)
    gates = [name for name, module in converted.named_modules() if isinstance(module, ChannelGate)]
    _check_structure(model, converted, gates)
    parameter = next(model.parameters())
    converted.to(device=parameter.device, dtype=parameter.dtype)
    _load(model, converted, gates)
    _copy_modes(model, converted)
    return converted


def _check_source(model: nn.Module) -> type[BasicBlock] | type[Bottleneck]:
    """The recal block class for ``model``'s blocks; refuse what recal's ResNet cannot be."""
    name = type(model).__name__
    if not isinstance(model, torchvision_resnet.ResNet):
        raise InvalidOptionError(f"{_NAME} converts a torchvision ResNet (torchvision.models.ResNet: resnet*, "
                                 f"resnext*, wide_resnet*); got {name}; recalibrate() places gates in other networks")
    # a subclass may compute something else with the same modules
    for method in ("forward", "_forward_impl"):
        if getattr(type(model), method) is not getattr(torchvision_resnet.ResNet, method):
            raise InvalidOptionError(f"{_NAME}: {name} overrides torchvision ResNet's {method}, which recal's ResNet "
                                     "would not reproduce; convert an unmodified torchvision ResNet")
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.dilation != (1, 1):
            raise InvalidOptionError(f"{_NAME}: {module_name} has dilation {module.dilation[0]} "
                                     "(replace_stride_with_dilation); recal's ResNet has strided stages only, so a "
                                     "dilated ResNet has no counterpart; recalibrate() places gates in it")
    blocks = [(f"{stage}.{i}", block) for stage in _STAGES for i, block in enumerate(getattr(model, stage))]
    for block_name, block in blocks:
        if type(block) not in _BLOCKS:
            raise InvalidOptionError(f"{_NAME}: {block_name} is a {type(block).__name__}; expected torchvision's "
                                     "BasicBlock or Bottleneck (convert a network before recalibrate() gates it, "
                                     "not after)")
    kinds = {type(block) for _, block in blocks}
    if len(kinds) > 1:
        raise InvalidOptionError(f"{_NAME}: {name} mixes {sorted(kind.__name__ for kind in kinds)} blocks; "
                                 "recal's ResNet has one block class")
    if not isinstance(model.fc, nn.Linear):
        raise InvalidOptionError(f"{_NAME}: {name}'s fc is a {type(model.fc).__name__}; expected the Linear "
                                 "classifier of a torchvision ResNet")
    return _BLOCKS[kinds.pop()]


def _leaves(model: nn.Module, skip: list[str]) -> dict[str, str]:
    return {name: repr(module) for name, module in model.named_modules()
            if not any(True for _ in module.children()) and not any(name.startswith(g + ".") for g in skip)}


def _check_structure(model: nn.Module, converted: nn.Module, gates: list[str]) -> None:
    """Every leaf module of ``model`` matches the one of the same name in ``converted``, and no leaf is extra."""
    theirs, ours = _leaves(model, []), _leaves(converted, gates)
    for leaf, description in theirs.items():
        if leaf not in ours or ours[leaf] != description:
            expected = f"has {ours[leaf]}" if leaf in ours else "has no such module"
            raise InvalidOptionError(f"{_NAME}: {type(model).__name__}'s {leaf} is {description}, where recal's "
                                     f"ResNet of this shape {expected}; convert an unmodified torchvision ResNet")
    extra = [leaf for leaf in ours if leaf not in theirs]
    if extra:
        raise InvalidOptionError(f"{_NAME}: {type(model).__name__} has no {extra[0]}, which recal's ResNet of "
                                 f"this shape has ({ours[extra[0]]}); convert an unmodified torchvision ResNet")


def _load(model: nn.Module, converted: nn.Module, gates: list[str]) -> None:
    # one check for both cases: without gates, "missing only under gates" is strict loading
    result = converted.load_state_dict(model.state_dict(), strict=False)
    if result.unexpected_keys:
        raise InvalidOptionError(f"{_NAME}: {type(model).__name__}'s state-dict entry {result.unexpected_keys[0]!r} "
                                 "has no place in recal's ResNet")
    missing = [key for key in result.missing_keys if not any(key.startswith(g + ".") for g in gates)]
    if missing:
        raise InvalidOptionError(f"{_NAME}: recal's ResNet entry {missing[0]!r} is not in "
                                 f"{type(model).__name__}'s state dict")


def _copy_modes(model: nn.Module, converted: nn.Module) -> None:
    """Train/eval per module, as in ``model`` (a gate takes its block's), and each parameter's requires_grad."""
    theirs = dict(model.named_modules())
    modes: dict[str, bool] = {}
    for name, module in converted.named_modules():
        modes[name] = theirs[name].training if name in theirs else modes[name.rpartition(".")[0]]
        module.training = modes[name]
    frozen = dict(model.named_parameters())
    for name, parameter in converted.named_parameters():
        if name in frozen:
            parameter.requires_grad_(frozen[name].requires_grad)
