"""The typed backbone config: the same keywords as :func:`create_model`.

LightningCLI (jsonargparse) reads ``model.backbone`` into this dataclass, so a
bad name — ``pooling: [avg, foo]``, an unknown model or module — is rejected
when the config is parsed, with the list of valid values, before anything is
built. Options left at None take the module's default; an option the chosen
module does not take is an error naming both when the model is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

from torch import nn

from recal.models.cmpe_se import CMPE_VARIANTS
from recal.models.ge import GE_VARIANTS
from recal.models.pooling import PoolingName
from recal.models.registry import RECALIBRATIONS, create_model, model_names

ModelName = Literal[model_names()]  # type: ignore[valid-type]
RecalibrationName = Literal[RECALIBRATIONS]  # type: ignore[valid-type]
Variant = Literal[(*GE_VARIANTS, *CMPE_VARIANTS)]  # type: ignore[valid-type]


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

    def build(self, num_classes: int) -> nn.Module:
        """Instantiate the network with ``num_classes`` outputs."""
        options = asdict(self)
        return create_model(options.pop("name"), num_classes, **options)
