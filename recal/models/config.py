"""The typed backbone config: the same keywords as :func:`create_model`.

LightningCLI (jsonargparse) reads ``model.backbone`` into this dataclass, so a
bad name — ``pooling: [avg, foo]``, an unknown model or module — is rejected
when the config is parsed, with the list of valid values, before anything is
built. Options left at None take the module's default; an option the chosen
module does not take is an error naming both when the model is built. A number
out of range for any network (``reduction: 0``, ``dropout: 1.5``) is an error when
the config is made; one out of range for the chosen network (a ``reduction``
larger than the channels of its smallest gated block) when the model is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

from torch import nn

from recal.errors import InvalidOptionError
from recal.layers.cmpe_se import CMPE_VARIANTS, CMPESE
from recal.layers.ge import GE_VARIANTS, GatherExcite
from recal.layers.pooling import PoolingName
from recal.models.registry import RECALIBRATIONS, create_model, model_names
from recal.layers.se import SE
from recal.layers.srm import SRM

ModelName = Literal[model_names()]  # type: ignore[valid-type]
RecalibrationName = Literal[RECALIBRATIONS]  # type: ignore[valid-type]
Variant = Literal[(*GE_VARIANTS, *CMPE_VARIANTS)]  # type: ignore[valid-type]
EXTENTS = ("global", 2, 4, 8)
OPTION = "model.backbone"


@dataclass
class BackboneConfig:
    """What network to build: a model name plus recalibration and backbone options."""

    name: ModelName = "srm_resnet50"
    recalibration: Optional[RecalibrationName] = None
    pooling: Optional[list[PoolingName]] = None
    integration: Optional[Literal["cfc", "mlp"]] = None
    bn: Optional[bool] = None
    reduction: Optional[int] = None
    bias: Optional[bool] = None
    variant: Optional[Variant] = None
    extent: Optional[Literal["global", 2, 4, 8]] = None
    stride_in_1x1: Optional[bool] = None
    input_size: Optional[int] = None
    dropout: Optional[float] = None

    def __post_init__(self) -> None:
        """Reject numbers that are wrong for any network, naming the option, the value and the range."""
        # a bool is an int to Python: reduction: true must not pass as 1
        for field in ("reduction", "input_size"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidOptionError(f"{OPTION}.{field}={value!r}: expected a positive integer")
        if self.extent is not None and self.extent not in EXTENTS:
            raise InvalidOptionError(f"{OPTION}.extent={self.extent!r}: expected one of {list(EXTENTS)}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise InvalidOptionError(f"{OPTION}.dropout={self.dropout!r}: expected a probability in [0, 1)")

    def build(self, num_classes: int) -> nn.Module:
        """Instantiate the network with ``num_classes`` outputs."""
        options = asdict(self)
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


def reduced_channels(model: nn.Module) -> list[int]:
    """The channel counts ``C`` that the gates of ``model`` reduce to ``C // reduction``."""
    counts = []
    for module in model.modules():
        if (isinstance(module, (SE, CMPESE)) or (isinstance(module, SRM) and module.integration == "mlp")
                or (isinstance(module, GatherExcite) and module.variant == "theta_plus")):
            counts.append(module.channels)
    return counts
