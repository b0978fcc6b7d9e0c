"""The recal network as the backbone of a dense-prediction head (detection, segmentation).

:func:`dense_backbone` builds the classification network of a :class:`~recal.models.BackboneConfig`
(its ``avgpool``/``fc`` stay unused: dense heads read ``layer1..4``), loads a weights file into
it, and applies torchvision's rules for detection backbones
(``torchvision/models/detection/backbone_utils.py``, ``faster_rcnn.py``):

- **BatchNorm**: a backbone that starts from weights has every BatchNorm replaced by
  ``torchvision.ops.FrozenBatchNorm2d`` — fixed statistics and affine, copied from the file —
  because dense training fits one or two large images per device, too few for batch statistics.
  The recalibration modules' own BatchNorms (SRM's score BN, a ``BatchNorm1d`` over (N, C); GE's
  gather BN; CMPE-SE's, CBAM's spatial BN, SK's and split attention's) follow the same rule
  (:class:`FrozenBatchNorm1d` for the 1-d ones). From scratch, every BatchNorm trains.
- **trainable layers**: only the last ``trainable_layers`` of ``layer4, layer3, layer2, layer1,
  conv1`` (5 also trains ``bn1``) keep ``requires_grad``; torchvision's meaning and range 0–5.
- **GE**: a global GE gather was built for the map size of the backbone's ``input_size``;
  :func:`~recal.layers.ge.allow_any_map_size` lets it take maps of any size, adaptive-pooled to
  that size (exactly the classification gate at the built size).

:func:`check_trainable_gate_batch_norms` refuses a per-device batch of one image while gate
BatchNorms train: those normalise one value per channel per image (SRM's scores, GE's global gather).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn
from lightning.pytorch.utilities import rank_zero_info
from torchvision.ops import FrozenBatchNorm2d

from recal.config_paths import CONFIG_ROOT
from recal.errors import CheckpointMismatchError, InvalidOptionError
from recal.layers import ChannelGate, SelectiveKernelConv, SplitAttentionConv
from recal.layers.ge import allow_any_map_size
from recal.models import BackboneConfig
from recal.tasks.weights import load_backbone_weights

__all__ = ["FrozenBatchNorm1d", "LAYERS_FROM_TOP", "check_trainable_gate_batch_norms", "check_weights_file",
           "dense_backbone",
           "freeze_batch_norms", "gate_batch_norms", "trainable_layer_names"]

# torchvision's order: trainable_layers=k keeps the first k of these trainable
LAYERS_FROM_TOP = ("layer4", "layer3", "layer2", "layer1", "conv1")
# modules whose BatchNorms are recalibration ones (gates and the conv replacements' attention)
RECALIBRATION_MODULES = (ChannelGate, SelectiveKernelConv, SplitAttentionConv)


class FrozenBatchNorm1d(FrozenBatchNorm2d):
    """``FrozenBatchNorm2d`` for (N, C) inputs (SRM's and SK's score BatchNorm1d); same buffers and keys."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2:
            return super().forward(x)
        return super().forward(x[:, :, None, None]).flatten(1)


def _frozen_copy(bn: nn.modules.batchnorm._BatchNorm) -> FrozenBatchNorm2d:
    frozen = (FrozenBatchNorm1d if isinstance(bn, nn.BatchNorm1d) else FrozenBatchNorm2d)(bn.num_features, bn.eps)
    if bn.affine:
        frozen.weight.copy_(bn.weight.detach())
        frozen.bias.copy_(bn.bias.detach())
    if bn.track_running_stats:
        frozen.running_mean.copy_(bn.running_mean)
        frozen.running_var.copy_(bn.running_var)
    return frozen.to(bn.weight.device if bn.affine else frozen.weight.device)


def freeze_batch_norms(model: nn.Module) -> int:
    """Replace every BatchNorm of ``model`` (1-d and 2-d, gates included) by a frozen copy; returns how many."""
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, nn.modules.batchnorm._BatchNorm)]
    for parent, name, child in targets:
        if child.track_running_stats is False:
            raise InvalidOptionError(f"BatchNorm {name} keeps no running statistics; it cannot be frozen")
        setattr(parent, name, _frozen_copy(child))
    return len(targets)


def trainable_layer_names(trainable_layers: int) -> tuple[str, ...]:
    """The top-level module names that keep ``requires_grad`` (torchvision's rule: 5 adds ``bn1``)."""
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= 5:
        raise InvalidOptionError(f"model.trainable_layers={trainable_layers!r}: expected an integer from 0 (all of "
                                 "the backbone frozen) to 5 (all trainable)")
    names = LAYERS_FROM_TOP[:trainable_layers]
    return (*names, "bn1") if trainable_layers == 5 else names


def _check_resnet_like(model: nn.Module, name: str) -> None:
    missing = [part for part in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4") if not hasattr(model, part)]
    if missing:
        raise InvalidOptionError(
            f"model.backbone.name={name!r} has no {', '.join(missing)}: detection and segmentation heads need a "
            "ResNet with conv1, bn1 and layer1..4 (resnet18/34/50/101/152, resnet50d, resnext50_32x4d, sknet50, "
            "resnest50, their gated versions, or torchvision.resnet*)")


def check_weights_file(weights: str) -> None:
    """Stop on a missing ``weights`` file in one line; a ``runs/<name>/version_N/…`` path names the config writing it."""
    path = Path(weights)
    if path.is_file():
        return
    hint = ""
    parts = path.parts
    if "checkpoints" in parts:
        at = parts.index("checkpoints")
        if at >= 2 and parts[at - 1].startswith("version_"):
            config = CONFIG_ROOT / f"{parts[at - 2]}.yaml"
            if config.is_file():
                shown = config.relative_to(CONFIG_ROOT.parent)
                hint = (f"; it is written by the ImageNet classification run of {shown} "
                        f"(python cli.py fit --config {config.name}), or point model.weights at another file")
    raise CheckpointMismatchError(f"model.weights: weights file {weights} does not exist{hint}")


def dense_backbone(backbone: BackboneConfig, weights: str | None, trainable_layers: int,
                   allow_missing_gates: bool = False) -> nn.Module:
    """The classification network of ``backbone``, from ``weights`` when given, ready for an FPN or a dense head.

    Applies the module docstring's rules: frozen BatchNorms (gates too) when ``weights`` is
    given, only the last ``trainable_layers`` stages trainable, GE gathers of any map size.
    ``allow_missing_gates`` lets a plain network's file start a gated one (see
    :func:`~recal.tasks.weights.load_backbone_weights`).
    """
    train_names = trainable_layer_names(trainable_layers)
    model = backbone.build(num_classes=1000)
    _check_resnet_like(model, backbone.name)
    if weights:
        check_weights_file(weights)
        loaded = load_backbone_weights(model, weights, model_name=backbone.name,
                                       allow_missing_gates=allow_missing_gates)
        rank_zero_info(loaded.summary(weights))
        freeze_batch_norms(model)
    for name, parameter in model.named_parameters():
        if not name.startswith(tuple(n + "." for n in train_names)):
            parameter.requires_grad_(False)
    allow_any_map_size(model)
    return model


def gate_batch_norms(model: nn.Module) -> list[str]:
    """Names of the BatchNorms inside recalibration modules that train (not frozen), in module order."""
    names = []
    for prefix, module in model.named_modules():
        if isinstance(module, RECALIBRATION_MODULES):
            names += [f"{prefix}.{name}" for name, child in module.named_modules()
                      if isinstance(child, nn.modules.batchnorm._BatchNorm)]
    return list(dict.fromkeys(names))  # a gate inside a conv replacement is seen twice


def check_trainable_gate_batch_norms(model: nn.Module, batch_size: int) -> None:
    """Refuse ``batch_size`` 1 (per device) when recalibration BatchNorms train: they need ≥ 2 images.

    Those BatchNorms normalise a handful of values per channel per image (one, for SRM's scores
    and GE's global gather), so one image per device cannot train them. Frozen ones (a backbone
    started from weights) take any batch.
    """
    if batch_size >= 2:
        return
    trained = gate_batch_norms(model)
    if trained:
        raise InvalidOptionError(
            f"data.batch_size={batch_size}: the recalibration modules' BatchNorm layers ({len(trained)}, e.g. "
            f"{trained[0]}) train on batch statistics and need at least 2 images per device; raise data.batch_size "
            "to 2 or more, or start the backbone from weights (model.weights: frozen BatchNorms)")
