"""The typed backbone config: the same keywords as :func:`create_model`, derived from the registry.

LightningCLI (jsonargparse) reads ``model.backbone`` into :class:`BackboneConfig`, so a
bad value — ``pooling: [avg, foo]``, an unknown model or module — is rejected when the
config is parsed, with the list of valid values, before anything is built. Its fields
are not written out here: they are the options the registry's modules declare
(``user_options``, typed by their constructors' annotations), every gate's
``identity_init`` and the networks' backbone options (``bn_group_size``, every network's:
ghost BatchNorm, :mod:`recal.layers.ghost_norm`), so that a new module's options
reach configs without a second declaration.
Options left at None take the module's default; an option the chosen module does not
take is an error naming both when the model is built. A number out of range for any
network (``reduction: 0``, ``dropout: 1.5``) is an error when the config is made; one out
of range for the chosen network (a ``reduction`` larger than the channels of its
smallest gated block) when the model is built.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, Optional, Union

from torch import nn

from recal.errors import InvalidOptionError
from recal.layers import CBAM, CMPESE, SE, SRM, GatherExcite
from recal.models.registry import FAMILIES, MODULES, create_model, parse_model_name
from recal.models.resnet import check_dilation

OPTION = "model.backbone"


class ModelName(str):
    """A name :func:`create_model` accepts: checked when a config is parsed, with the valid names listed."""

    def __new__(cls, value: str) -> "ModelName":
        parse_model_name(value)  # an InvalidOptionError (a ValueError) listing the valid names
        return super().__new__(cls, value)


try:  # the models also run where only torch is installed (benchmarks/gpu_suite.py): the CLI needs jsonargparse
    from jsonargparse.typing import register_type
except ImportError:
    pass
else:  # jsonargparse turns the ValueError of the check into its parse error for the option
    register_type(ModelName, serializer=str, deserializer=ModelName)


def _module_option_types() -> dict[str, Any]:
    """option → its type: the union of the annotations of every module constructor that takes it."""
    types: dict[str, list[Any]] = {}
    for module in MODULES.values():
        hints = typing.get_type_hints(module.__init__)
        for option in module.user_options:
            if hints[option] not in types.setdefault(option, []):
                types[option].append(hints[option])
    return {option: Union[tuple(found)] if len(found) > 1 else found[0] for option, found in types.items()}


def _backbone_option_types() -> dict[str, Any]:
    types = {option: kind for family in FAMILIES for option, kind in family.option_types.items()}
    # the order of today's configs and checkpoints; bn_group_size (every network's) came later, then
    # replace_stride_with_dilation (the ImageNet ResNets', for dense prediction)
    order = ("stride_in_1x1", "input_size", "dropout", "bn_group_size", "replace_stride_with_dilation")
    return {option: {**types, "input_size": int, "bn_group_size": int}[option] for option in order}


@dataclasses.dataclass
class _BackboneConfigMethods:
    """What the derived dataclass does beyond holding values (a dataclass without fields, so that
    jsonargparse reads the derived class as plain data, not as a class to pick by class_path)."""

    def __post_init__(self) -> None:
        """Reject names and numbers that are wrong for any network, naming the option, the value and the range."""
        try:
            parse_model_name(self.name)
        except InvalidOptionError as error:
            raise InvalidOptionError(f"{OPTION}.name: {error}") from None
        self.name = str(self.name)  # plain data in checkpoints (they are read with weights_only)
        # a bool is an int to Python: reduction: true must not pass as 1
        for option in ("reduction", "input_size", "bn_group_size"):
            value = getattr(self, option)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidOptionError(f"{OPTION}.{option}={value!r}: expected a positive integer")
        extents = typing.get_args(typing.get_type_hints(GatherExcite.__init__)["extent"])
        if self.extent is not None and self.extent not in extents:
            raise InvalidOptionError(f"{OPTION}.extent={self.extent!r}: expected one of {list(extents)}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise InvalidOptionError(f"{OPTION}.dropout={self.dropout!r}: expected a probability in [0, 1)")
        if self.replace_stride_with_dilation is not None:
            self.replace_stride_with_dilation = list(check_dilation(
                self.replace_stride_with_dilation, f"{OPTION}.replace_stride_with_dilation"))

    def build(self, num_classes: int) -> nn.Module:
        """Instantiate the network with ``num_classes`` outputs."""
        options = dataclasses.asdict(self)
        model = create_model(options.pop("name"), num_classes, **options)
        self._check_reduction(model)
        return model

    def _check_reduction(self, model: nn.Module) -> None:
        """A set ``reduction`` must not exceed the channels of the smallest gate that divides by it."""
        # the gates compute max(C // reduction, 1), which would hide a reduction larger than C
        counts = reduced_channels(model)
        if self.reduction is not None and counts and self.reduction > min(counts):
            raise InvalidOptionError(
                f"{OPTION}.reduction={self.reduction} is larger than {min(counts)}, the channels of the smallest "
                f"gated block of {self.name} (C // reduction would be 0); expected 1 to {min(counts)}")


def _backbone_config() -> type:
    fields: list[tuple[str, Any, Any]] = [
        ("name", ModelName, "srm_resnet50"),
        ("recalibration", Optional[Literal[tuple(MODULES)]], None),  # type: ignore[misc]
    ]
    # identity_init is every gate's (gate_factory's), not one module's: after the modules' own options
    options = {**_module_option_types(), "identity_init": bool, **_backbone_option_types()}
    fields += [(option, Optional[kind], None) for option, kind in options.items()]
    config = dataclasses.make_dataclass("BackboneConfig", fields, bases=(_BackboneConfigMethods,),
                                        namespace={"__module__": __name__})
    config.__doc__ = ("What network to build: a model name (any of recal.models.model_names(), or "
                      "[<gate>_]wrn<depth>_<k>) plus recalibration and backbone options.")
    return config


BackboneConfig = _backbone_config()


def reduced_channels(model: nn.Module) -> list[int]:
    """The channel counts ``C`` that the gates of ``model`` reduce to ``C // reduction``."""
    counts = []
    for module in model.modules():
        if (isinstance(module, (SE, CMPESE, CBAM)) or (isinstance(module, SRM) and module.integration == "mlp")
                or (isinstance(module, GatherExcite) and module.variant == "theta_plus")):
            counts.append(module.channels)
    return counts
