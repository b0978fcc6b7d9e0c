"""SegmentationTask: torchvision's DeepLabV3 and FCN heads on a recal backbone.

The network is torchvision's own ``DeepLabV3`` / ``FCN`` class, assembled directly (never the
``deeplabv3_resnet50`` builders, which download): an ``IntermediateLayerGetter`` over the recal
ResNet of :func:`~recal.tasks.dense_backbone.dense_backbone` returning ``layer4`` (and ``layer3``
for the auxiliary head), ``DeepLabHead`` (ASPP, rates 12/24/36) or ``FCNHead`` on it, and an
``FCNHead`` on ``layer3`` when ``aux_loss``. Both upsample their logits to the input size.

The training recipe is torchvision's reference (``references/segmentation/train.py``):
cross-entropy ignoring label 255 (VOC's object boundaries), plus 0.5 × the auxiliary head's;
the auxiliary head trains at 10× the learning rate; a polynomial decay of power 0.9 stepped
every iteration down to 0 at the last step. Metrics are dataset-level: ``val/miou`` is the mean
over classes of intersection / union accumulated over every validation pixel
(torchmetrics ``MulticlassJaccardIndex``, macro), not a mean of per-image IoUs; ``val/pixel_acc``
the fraction of labelled pixels predicted right; both ignore 255. ``train/loss`` is logged per
step and per epoch, ``val/loss`` per validation; ``cli.py test`` logs the same under ``test/``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn
from torch.optim.lr_scheduler import PolynomialLR
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation import DeepLabV3, FCN
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from recal.errors import InvalidOptionError
from recal.models import BackboneConfig
from recal.models.param_groups import NoDecayScope
from recal.tasks.dense_backbone import check_trainable_gate_batch_norms, dense_backbone
from recal.tasks.finite import stop_if_not_finite
from recal.tasks.optim import parameter_groups

__all__ = ["IGNORE_INDEX", "SegmentationTask", "build_segmentation_model", "segmentation_metrics"]

IGNORE_INDEX = 255  # VOC's boundary and "difficult" label: never a class, never counted
AUX_LOSS_WEIGHT = 0.5  # torchvision's reference criterion
AUX_LR_FACTOR = 10.0  # torchvision's reference: the auxiliary head's parameter group
Head = Literal["deeplabv3", "fcn"]
HEADS = ("deeplabv3", "fcn")


def build_segmentation_model(body: nn.Module, head: Head, num_classes: int, aux_loss: bool) -> nn.Module:
    """torchvision's ``DeepLabV3`` or ``FCN`` on a recal ResNet ``body`` (``layer3``/``layer4`` read)."""
    if head not in HEADS:
        raise InvalidOptionError(f"model.head={head!r}: expected one of {list(HEADS)}")
    channels = body.fc.in_features  # layer4's output channels: 2048 for ResNet-50, 512 for ResNet-18
    return_layers = {"layer4": "out", **({"layer3": "aux"} if aux_loss else {})}
    backbone = IntermediateLayerGetter(body, return_layers=return_layers)
    classifier = DeepLabHead(channels, num_classes) if head == "deeplabv3" else FCNHead(channels, num_classes)
    aux_classifier = FCNHead(channels // 2, num_classes) if aux_loss else None
    network = DeepLabV3 if head == "deeplabv3" else FCN
    return network(backbone, classifier, aux_classifier)


def segmentation_metrics(num_classes: int) -> nn.ModuleDict:
    """Dataset-level mIoU and pixel accuracy over every pixel not labelled 255."""
    return nn.ModuleDict({
        "miou": MulticlassJaccardIndex(num_classes, ignore_index=IGNORE_INDEX, average="macro"),
        "pixel_acc": MulticlassAccuracy(num_classes, ignore_index=IGNORE_INDEX, average="micro"),
    })


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """torchvision's reference for DeepLabV3-R50: SGD lr 0.02, momentum 0.9, weight decay 1e-4."""
    return torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)


class SegmentationTask(L.LightningModule):
    """Semantic segmentation with a recal backbone and a torchvision head.

    Args:
        backbone: which network to build; ``replace_stride_with_dilation: [false, true, true]``
            gives the output stride 8 of torchvision's segmentation models.
        num_classes: classes including background; linked from the datamodule by cli.py.
        head: ``deeplabv3`` (ASPP) or ``fcn``.
        aux_loss: an FCN head on ``layer3`` whose loss counts 0.5 (training only).
        weights: a local classification weights file for the backbone (a recal ``best.ckpt`` or a
            state dict; None: from scratch; nothing is ever downloaded). With weights every
            BatchNorm, the gates' too, is frozen (:mod:`recal.tasks.dense_backbone`).
        allow_missing_gates: let a plain network's file start a gated backbone.
        trainable_layers: how many of layer4, layer3, layer2, layer1, conv1 train (5: all,
            torchvision's segmentation models).
        optimizer: optimiser factory; default the reference's SGD 0.02 / 0.9 / 1e-4.
        poly_power: the polynomial decay's power, stepped per iteration (None: constant lr).
        no_weight_decay: the backbone parameters with weight decay 0 ("srm": SRM's CFC and BN).
        seed: unused by the task's computation; linked from ``seed_everything`` like every task.
    """

    def __init__(
        self,
        backbone: BackboneConfig = BackboneConfig(name="resnet50", replace_stride_with_dilation=[False, True, True]),
        num_classes: int = 21,
        head: Head = "deeplabv3",
        aux_loss: bool = True,
        weights: Optional[str] = None,
        allow_missing_gates: bool = False,
        trainable_layers: int = 5,
        optimizer: OptimizerCallable = default_optimizer,
        poly_power: Optional[float] = 0.9,
        no_weight_decay: NoDecayScope = "srm",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        if poly_power is not None and poly_power <= 0:
            raise InvalidOptionError(f"model.poly_power={poly_power}: expected a positive power, or null for a "
                                     "constant learning rate")
        body = dense_backbone(backbone, weights, trainable_layers, allow_missing_gates)
        self.model = build_segmentation_model(body, head, num_classes, aux_loss)
        self.optimizer_factory = optimizer
        self.val_metrics = segmentation_metrics(num_classes)
        self.val_loss = MeanMetric(nan_strategy="disable")
        self.test_metrics = segmentation_metrics(num_classes)
        self.test_loss = MeanMetric(nan_strategy="disable")

    def forward(self, x: Tensor) -> Tensor:
        """Per-pixel logits (N, num_classes, H, W) of the main head."""
        return self.model(x)["out"]

    def loss(self, outputs: dict[str, Tensor], masks: Tensor) -> Tensor:
        """Cross-entropy ignoring 255, plus 0.5 × the auxiliary head's (torchvision's reference criterion)."""
        loss = F.cross_entropy(outputs["out"], masks, ignore_index=IGNORE_INDEX)
        if "aux" in outputs:
            loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(outputs["aux"], masks, ignore_index=IGNORE_INDEX)
        return loss

    def on_fit_start(self) -> None:
        batch_size = getattr(self.trainer.datamodule, "batch_size", None)
        if batch_size is None:
            return
        check_trainable_gate_batch_norms(self.model.backbone, batch_size)
        if batch_size < 2 and self.hparams.head == "deeplabv3":
            # ASPP's image-pooling branch normalises one value per channel per image
            raise InvalidOptionError(
                f"data.batch_size={batch_size}: DeepLabV3's ASPP pooling branch has a BatchNorm over one pooled "
                "value per image and needs at least 2 images per device; raise data.batch_size or use model.head: fcn")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, masks = batch
        loss = self.loss(self.model(images), masks)
        stop_if_not_finite(self, loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=images.shape[0],
                 sync_dist=True)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], prefix: str, metrics: nn.ModuleDict, loss: MeanMetric) -> None:
        images, masks = batch
        logits = self(images)
        loss.update(F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX), weight=images.shape[0])
        predictions = logits.argmax(dim=1)
        for metric in metrics.values():
            metric.update(predictions, masks)
        self.log(f"{prefix}/loss", loss)
        self.log(f"{prefix}/miou", metrics["miou"], prog_bar=True)
        self.log(f"{prefix}/pixel_acc", metrics["pixel_acc"])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics, self.val_loss)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics, self.test_loss)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self(batch[0]).argmax(dim=1)

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.model.backbone, self.hparams.no_weight_decay)
        groups.append({"params": [p for p in self.model.classifier.parameters() if p.requires_grad], "name": "head"})
        aux = self.model.aux_classifier
        if aux is not None:
            groups.append({"params": list(aux.parameters()), "name": "aux_head"})
        optimizer = self.optimizer_factory([group for group in groups if group["params"]])
        if aux is not None:
            optimizer.param_groups[-1]["lr"] *= AUX_LR_FACTOR
        if self.hparams.poly_power is None:
            return optimizer
        # per iteration down to 0 at the last step, as the reference (total_iters: every step of the fit)
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = PolynomialLR(optimizer, total_iters=steps, power=self.hparams.poly_power)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
