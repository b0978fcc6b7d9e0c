"""recal's model catalogue: recalibration modules, backbones and their factory.

Public face: :func:`create_model`, :func:`create_recalibration`,
:func:`create_conv`, :func:`fuse`, :func:`no_weight_decay_parameters`, :class:`BackboneConfig`.
"""

from recal.models.config import BackboneConfig
from recal.models.convert import resnet_from_torchvision
from recal.models.fuse import fuse
from recal.layers.gate import ChannelGate
from recal.models.param_groups import no_weight_decay_parameters
from recal.models.registry import create_conv, create_model, create_recalibration, model_names

__all__ = [
    "BackboneConfig",
    "ChannelGate",
    "create_conv",
    "create_model",
    "create_recalibration",
    "fuse",
    "model_names",
    "no_weight_decay_parameters",
    "resnet_from_torchvision",
]
