"""DetectionTask: Faster R-CNN with FPN, or RetinaNet, over a recal backbone.

Holds the training logic and nothing about data. The detector is torchvision's, built
directly (``FasterRCNN(...)``, ``RetinaNet(...)``) over an FPN on the recal network —
the layout of ``torchvision.models.detection.backbone_utils._resnet_fpn_extractor``, which reads
``conv1, bn1, layer1..4`` (:func:`resnet_fpn`) — never through torchvision's ``*_fpn`` builders, whose default
backbone weights download. The backbone comes from :func:`recal.tasks.dense_backbone.dense_backbone`:

- **BatchNorm** (torchvision's rule): frozen (``FrozenBatchNorm2d``) when the backbone starts
  from ``weights`` (a recal ImageNet classification checkpoint or a torchvision/recal state
  dict), trained otherwise; the recalibration modules' BatchNorms (SRM's score BN, GE's gather
  BN, …) follow the same rule, and while they train a per-device batch of one image is refused.
- **trainable_layers**: torchvision's 0–5 (None: its defaults, 3 from weights, 5 from scratch).
- **GE**: a global GE gather was built for the map size of the backbone's ``input_size``
  (224: 56, 28, 14, 7 per stage); detection maps of any other size are adaptive-average-pooled
  to that size before the learned gather (:func:`recal.layers.ge.allow_any_map_size`). At the
  built size the gate is exactly the classification one.

``min_size`` / ``max_size`` live here: they are the detector's ``GeneralizedRCNNTransform``
sizes (the shorter side resized to ``min_size`` unless the longer would pass ``max_size``), so
images reach the model at their own size and predictions come back in their pixels.
Labels are indices below ``num_classes`` with 0 the background (COCO: its category ids, 91).

Logged: ``train/loss`` and each component (``train/loss_classifier``, ``train/loss_box_reg``,
``train/loss_objectness``, ``train/loss_rpn_box_reg``; RetinaNet: ``train/classification``,
``train/bbox_regression``), and at each validation COCO box mAP (:mod:`recal.tasks.detection_metrics`):
``val/map``, ``val/map_50``, ``val/map_75``, ``val/map_small``, ``val/map_medium``, ``val/map_large``.
The learning rate warms up linearly per iteration (``warmup_iterations``, torchvision's
references: 1,000 from 0.001·lr) in front of the epoch-wise ``lr_scheduler``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from recal.errors import InvalidOptionError
from recal.models import BackboneConfig
from recal.models.param_groups import NoDecayScope
from recal.tasks.dense_backbone import check_trainable_gate_batch_norms, dense_backbone
from recal.tasks.detection_metrics import MAP_KEYS, box_map, metric_inputs
from recal.tasks.finite import stop_if_not_finite
from recal.tasks.kernels import KernelChoice, choose_kernels
from recal.tasks.optim import parameter_groups

__all__ = ["DetectionTask", "build_detector", "reference_optimizer", "resnet_fpn"]

Architecture = Literal["faster_rcnn", "retinanet"]


def reference_optimizer(params: Any) -> Optimizer:
    """torchvision's detection recipe: SGD, lr 0.02 (for 16 images), momentum 0.9, weight decay 1e-4."""
    return torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)


def resnet_fpn(body: nn.Module, returned_layers: list[int], fpn_channels: int,
               extra_blocks: Optional[nn.Module] = None) -> BackboneWithFPN:
    """An FPN over ``layer<i>`` of ``body`` for i in ``returned_layers``: torchvision's ``_resnet_fpn_extractor``
    layout (input channels from ``body.inplanes``) with ``fpn_channels`` outputs instead of a fixed 256.

    ``body`` arrives with its BatchNorms and trainable layers already set by
    :func:`~recal.tasks.dense_backbone.dense_backbone`.
    """
    stage2 = body.inplanes // 8  # layer1's output channels: 256 for bottlenecks, 64 for basic blocks
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    in_channels = [stage2 * 2 ** (i - 1) for i in returned_layers]
    return BackboneWithFPN(body, return_layers, in_channels, fpn_channels, extra_blocks=extra_blocks)


def build_detector(architecture: str, body: nn.Module, num_classes: int, min_size: int, max_size: int,
                   score_thresh: float, detections_per_img: int, fpn_channels: int = 256,
                   box_batch_size_per_image: int = 512) -> nn.Module:
    """Faster R-CNN (FPN on layer1..4, P6 by max-pool) or RetinaNet (FPN on layer2..4, P6/P7) over ``body``.

    The FPN layouts are torchvision's ``fasterrcnn_resnet50_fpn`` and ``retinanet_resnet50_fpn``
    (``LastLevelP6P7`` from P5); ``box_batch_size_per_image`` is Faster R-CNN's number of
    sampled RoIs per image (torchvision: 512).
    """
    if architecture == "faster_rcnn":
        fpn = resnet_fpn(body, [1, 2, 3, 4], fpn_channels)
        return FasterRCNN(fpn, num_classes, min_size=min_size, max_size=max_size, box_score_thresh=score_thresh,
                          box_detections_per_img=detections_per_img,
                          box_batch_size_per_image=box_batch_size_per_image)
    if architecture == "retinanet":
        fpn = resnet_fpn(body, [2, 3, 4], fpn_channels, LastLevelP6P7(fpn_channels, fpn_channels))
        return RetinaNet(fpn, num_classes, min_size=min_size, max_size=max_size, score_thresh=score_thresh,
                         detections_per_img=detections_per_img)
    raise InvalidOptionError(f"model.architecture={architecture!r}; expected 'faster_rcnn' or 'retinanet'")


class DetectionTask(L.LightningModule):
    """Object detection with a recal backbone (see the module docstring).

    Args:
        architecture: ``faster_rcnn`` (Faster R-CNN with FPN) or ``retinanet``.
        backbone: which network (model name, recalibration and options), as for classification.
        num_classes: label indices including background 0; linked from the datamodule by cli.py
            (COCO: 91, its category ids; RetinaNet, which has no background class, takes the
            same count and never predicts 0).
        min_size: the shorter image side the detector resizes to (torchvision: 800).
        max_size: the cap on the longer side (torchvision: 1333).
        trainable_layers: how many of layer4, layer3, layer2, layer1, conv1 train (0–5);
            None: torchvision's defaults, 3 from weights, 5 from scratch.
        weights: a local weights file for the backbone (a recal classification checkpoint or a
            state dict); its BatchNorms are then frozen. None: from scratch, BatchNorms train.
        allow_missing_gates: let a plain network's file start a gated backbone.
        optimizer: optimiser factory; default :func:`reference_optimizer`.
        lr_scheduler: epoch-wise schedule factory (the recipe: MultiStepLR at 16 and 22).
        warmup_iterations: linear warmup, per optimiser step, from ``warmup_factor``·lr.
        warmup_factor: the warmup's starting fraction of the learning rate.
        no_weight_decay: which parameters get weight decay 0 (as for classification).
        score_thresh: detections scoring below are dropped (torchvision: 0.05).
        detections_per_img: detections kept per image (COCO's protocol reads 100).
        fpn_channels: the FPN's output channels (torchvision: 256; the CPU demo uses fewer).
        box_batch_size_per_image: RoIs sampled per image for Faster R-CNN's box head (torchvision: 512).
        kernels: recal's compiled kernels; "eager" by default, because compiled ones recompile
            for every new image size and detection images vary.
        seed: linked from ``seed_everything`` (the task draws no randomness of its own).
    """

    def __init__(
        self,
        architecture: Architecture = "faster_rcnn",
        backbone: BackboneConfig = BackboneConfig(name="resnet50"),
        num_classes: int = 91,
        min_size: int = 800,
        max_size: int = 1333,
        trainable_layers: Optional[int] = None,
        weights: Optional[str] = None,
        allow_missing_gates: bool = False,
        optimizer: OptimizerCallable = reference_optimizer,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        warmup_iterations: int = 0,
        warmup_factor: float = 0.001,
        no_weight_decay: NoDecayScope = "srm",
        score_thresh: float = 0.05,
        detections_per_img: int = 100,
        fpn_channels: int = 256,
        box_batch_size_per_image: int = 512,
        kernels: KernelChoice = "eager",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if num_classes < 2:
            raise InvalidOptionError(f"model.num_classes={num_classes}; expected at least 2 (background and one class)")
        for option, value in (("min_size", min_size), ("max_size", max_size)):
            if value < 1:
                raise InvalidOptionError(f"model.{option}={value}; expected a positive number of pixels")
        for option, value in (("fpn_channels", fpn_channels), ("box_batch_size_per_image", box_batch_size_per_image),
                              ("detections_per_img", detections_per_img)):
            if value < 1:
                raise InvalidOptionError(f"model.{option}={value}; expected a positive integer")
        if max_size < min_size:
            raise InvalidOptionError(f"model.max_size={max_size} is below model.min_size={min_size}")
        if warmup_iterations < 0 or not 0 < warmup_factor <= 1:
            raise InvalidOptionError(f"model.warmup_iterations={warmup_iterations}, model.warmup_factor="
                                     f"{warmup_factor}; expected iterations ≥ 0 and a factor in (0, 1]")
        layers = trainable_layers if trainable_layers is not None else (3 if weights else 5)
        body = dense_backbone(backbone, weights, layers, allow_missing_gates)
        self.model = build_detector(architecture, body, num_classes, min_size, max_size, score_thresh,
                                    detections_per_img, fpn_channels, box_batch_size_per_image)
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.val_map = box_map()
        self.warmup: Optional[LinearLR] = None  # set by configure_optimizers

    def forward(self, images: list[Tensor], targets: Optional[list[dict]] = None) -> Any:
        return self.model(list(images), None if targets is None else list(targets))

    # ------------------------------------------------------------------ training
    def on_fit_start(self) -> None:
        batch_size = getattr(self.trainer.datamodule, "batch_size", None)
        if batch_size is not None:
            check_trainable_gate_batch_norms(self.model, batch_size)

    def on_train_start(self) -> None:
        choose_kernels(self.hparams.kernels, self.trainer.estimated_stepping_batches, self.device.type)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = batch
        losses = self(images, targets)
        loss = sum(losses.values())
        stop_if_not_finite(self, loss)
        size = len(images)
        # sync_dist: under DDP the epoch means cover every rank's batches
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        self.log_dict({f"train/{name}": value.detach() for name, value in losses.items()}, on_step=True,
                      on_epoch=True, batch_size=size, sync_dist=True)
        return loss

    # ---------------------------------------------------------------- evaluation
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, targets = batch
        self.val_map.update(*metric_inputs(self(images), targets))

    def on_validation_epoch_end(self) -> None:
        results = self.val_map.compute()  # gathers every rank's detections under DDP: equal on every rank
        self.val_map.reset()
        self.log("val/map", results["map"].float(), prog_bar=True, sync_dist=True)
        self.log_dict({f"val/{key}": results[key].float() for key in MAP_KEYS[1:]}, sync_dist=True)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        """Per image: ``image_id`` and its ``boxes`` (xyxy, the image's pixels), ``scores``, ``labels``."""
        images, targets = batch
        detections = self(images)
        return [{"image_id": target.get("image_id", None), **{k: v.detach().cpu() for k, v in d.items()}}
                for d, target in zip(detections, targets)]

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(parameter_groups(self.model, self.hparams.no_weight_decay))
        # built first: the chained warmup then multiplies the lr the epoch-wise schedule starts from
        scheduler = self.scheduler_factory(optimizer) if self.scheduler_factory is not None else None
        self.warmup = None
        if self.hparams.warmup_iterations > 0:
            self.warmup = LinearLR(optimizer, start_factor=self.hparams.warmup_factor, end_factor=1.0,
                                   total_iters=self.hparams.warmup_iterations)
            if self._warmup_state is not None:
                self.warmup.load_state_dict(self._warmup_state)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # The warmup is stepped here, per optimiser step, rather than handed to Lightning as a second
    # scheduler: the run then logs one learning rate per parameter group (lr-SGD/decay), not two.
    _warmup_state: Optional[dict] = None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        stepped = (batch_idx + 1) % accumulate == 0  # an optimiser step ended this batch
        if stepped and self.warmup is not None and self.warmup.last_epoch < self.hparams.warmup_iterations:
            self.warmup.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if getattr(self, "warmup", None) is not None:
            checkpoint["warmup_scheduler"] = self.warmup.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # restored before configure_optimizers runs: kept until the warmup exists
        self._warmup_state = checkpoint.get("warmup_scheduler")
