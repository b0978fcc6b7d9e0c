"""ClassificationTask: the LightningModule behind every classification config.

Holds the training logic and nothing about data: a backbone built from the typed
:class:`~recal.models.BackboneConfig`, cross-entropy with optional label
smoothing and mixup, top-1/top-5 through torchmetrics, the SRM no-weight-decay
parameter group, and the metrics every run logs (``train/loss_step``, ``train/loss_epoch``,
``val/loss``, ``val/acc1``, ``val/acc5``; a second validation set under its own prefix; the run
folder that holds them is described in :mod:`recal.run_folder`).

Randomness that must survive a resume (mixup's λ and permutation) is drawn from
a generator seeded by (seed, global step), never from the global RNG.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from recal.errors import InvalidOptionError
from recal.models import BackboneConfig
from recal.models.param_groups import NoDecayScope
from recal.tasks.checkpoints import check_checkpoint_fits
from recal.tasks.finite import stop_if_not_finite
from recal.tasks.kernels import KernelChoice, choose_kernels
from recal.tasks.optim import default_optimizer, parameter_groups, with_warmup
from recal.tasks.weights import load_backbone_weights


def accuracy_metrics(num_classes: int) -> MetricCollection:
    """Top-1 and top-5 accuracy (top-k capped at the number of classes)."""
    return MetricCollection({
        "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
        "acc5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
    })


def test_set_name(val_set_name: str) -> str:
    """The metric prefix of a validation set's test counterpart: val → test, val_in → test_in."""
    return "test" + val_set_name[3:] if val_set_name.startswith("val") else f"test_{val_set_name}"


class ClassificationTask(L.LightningModule):
    """Image classification with a recal backbone.

    Args:
        backbone: which network to build (model name, recalibration and options).
        num_classes: number of outputs; linked from the datamodule by cli.py.
        optimizer: optimiser factory; default SGD 0.1 / momentum 0.9 / wd 1e-4.
        lr_scheduler: epoch-wise schedule factory (e.g. MultiStepLR, CosineAnnealingLR).
        warmup_epochs: linear warmup epochs in front of ``lr_scheduler``.
        no_weight_decay: which parameters get weight decay 0 ("srm": SRM's CFC
            and BN only, the official recipe; "norm_and_bias"; "none").
        label_smoothing: cross-entropy label smoothing.
        mixup_alpha: Beta(α, α) mixup; 0 turns it off.
        val_set_names: metric prefix per validation dataloader (test: val → test).
        kernels: recal's compiled kernels: "compiled", "eager", or "auto" — compiled
            when the fit runs at least 2,000 steps (to repay the one-time compile)
            and this machine can compile; ``RECAL_KERNELS=eager`` overrides.
        seed: seeds mixup's generator together with the global step.
        weights: a local weights file to start the backbone from — a state dict of the plain
            network (recal, torchvision or timm naming) or a recal checkpoint; the head is
            always new (None: from scratch; nothing is ever downloaded).
        allow_missing_gates: let a file without recalibration modules (the plain network's)
            initialise a recalibrated backbone: the gates keep their own initialisation, the
            tensors of squeeze-excitation modules a gate replaced are not loaded (both logged).
    """

    def __init__(
        self,
        backbone: BackboneConfig = BackboneConfig(),
        num_classes: int = 1000,
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        warmup_epochs: int = 0,
        no_weight_decay: NoDecayScope = "srm",
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        val_set_names: Sequence[str] = ("val", "val_in"),
        kernels: KernelChoice = "auto",
        seed: int = 0,
        weights: Optional[str] = None,
        allow_missing_gates: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.model = self.build_model(backbone, num_classes)
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        eval_sets = [*val_set_names, *map(test_set_name, val_set_names)]
        self.eval_metrics = nn.ModuleDict({
            name: accuracy_metrics(num_classes).clone(prefix=f"{name}/") for name in eval_sets
        })
        # nan_strategy "disable": a NaN batch loss makes the logged loss NaN (MeanMetric's
        # default would drop it with a warning and report the mean of the finite batches)
        self.eval_losses = nn.ModuleDict({name: MeanMetric(nan_strategy="disable") for name in eval_sets})
        self.train_samples = SumMetric()

    def build_model(self, backbone: BackboneConfig, num_classes: int) -> nn.Module:
        """The network, initialised from ``weights`` when given; subclasses override to add heads or per-domain gates."""
        model = backbone.build(num_classes)
        if self.hparams.get("weights"):
            loaded = load_backbone_weights(model, self.hparams.weights, model_name=backbone.name,
                                           allow_missing_gates=self.hparams.allow_missing_gates)
            rank_zero_info(loaded.summary(self.hparams.weights))
        return model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def check_batch_norms(self) -> None:
        """Refuse ghost BatchNorm turned into SyncBatchNorm: ``trainer.sync_batchnorm`` replaces every BatchNorm.

        Called from :meth:`configure_optimizers`, which Lightning runs after the strategy has
        converted the network's BatchNorms (it would otherwise train with neither statistics asked for).
        """
        backbone = self.hparams.backbone  # the dataclass, or a dict once read back from a checkpoint
        group = backbone.get("bn_group_size") if isinstance(backbone, dict) else backbone.bn_group_size
        if group and any(isinstance(m, nn.SyncBatchNorm) for m in self.model.modules()):
            raise InvalidOptionError(
                f"model.backbone.bn_group_size={group} (statistics per group of {group} images) and "
                "trainer.sync_batchnorm: true (statistics over every process's images) ask for two different "
                "BatchNorms; set one of them")

    # ------------------------------------------------------------------ training
    def mixup(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
        """Mix the batch with a permutation of itself; returns x, y, y[perm], λ."""
        step_seed = self.hparams.seed * 1_000_003 + self.global_step
        lam = float(np.random.default_rng(step_seed).beta(self.hparams.mixup_alpha, self.hparams.mixup_alpha))
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(step_seed)).to(x.device)
        return lam * x + (1 - lam) * x[perm], y, y[perm], lam

    def training_loss(self, logits: Tensor, y: Tensor, y2: Tensor | None = None, lam: float = 1.0) -> Tensor:
        """Cross-entropy with label smoothing, mixed between two targets under mixup."""
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        if y2 is not None:
            loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y2, label_smoothing=self.hparams.label_smoothing)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        if not self.trainable_batch(x.shape[0]):
            return None  # Lightning skips the optimiser step
        if self.hparams.mixup_alpha > 0:
            x, y, y2, lam = self.mixup(x, y)
            loss = self.training_loss(self(x), y, y2, lam)
        else:
            loss = self.training_loss(self(x), y)
        stop_if_not_finite(self, loss)
        self.train_samples.update(torch.tensor(float(x.shape[0]), device=self.device))
        # sync_dist: under DDP the epoch mean covers every rank's batches, not rank 0's alone
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=x.shape[0],
                 sync_dist=True)
        self.log("train/samples", self.train_samples, on_step=False, on_epoch=True)
        return loss

    def trainable_batch(self, size: int) -> bool:
        """Whether a training batch of ``size`` samples can train the model.

        BatchNorm (in the backbone and in SRM/GE gates) cannot train on one sample.
        A configured batch size of 1 is an error; a batch that skipped corrupt images
        down to one sample is skipped with a warning.
        """
        if size >= 2 or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
            return True
        configured = getattr(self.trainer.datamodule, "batch_size", None) if self._trainer is not None else None
        if configured is None or configured < 2:
            raise InvalidOptionError(
                f"a training batch of {size} sample: BatchNorm layers (backbone and SRM/GE gate scores) need at "
                "least 2 samples per device in training; raise data.batch_size (it is per device)")
        rank_zero_warn(f"skipped a training batch of {size} sample at step {self.global_step} (skipped corrupt "
                       "images left too few for BatchNorm)")
        return False

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        path = self.trainer.ckpt_path if self._trainer is not None else None
        backbone = self.hparams.backbone  # Lightning stores the dataclass as a dict
        name = backbone["name"] if isinstance(backbone, dict) else backbone.name
        description = f"{name} with {self.hparams.num_classes} classes"
        check_checkpoint_fits(self.state_dict(), checkpoint, path, description)

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, batch: Any, set_name: str) -> None:
        x, y = batch[0], batch[1]
        logits = self(x)
        self.eval_losses[set_name].update(F.cross_entropy(logits, y), weight=x.shape[0])
        metrics = self.eval_metrics[set_name]
        metrics.update(logits, y)
        self.log(f"{set_name}/loss", self.eval_losses[set_name], add_dataloader_idx=False)
        self.log_dict(metrics, add_dataloader_idx=False, prog_bar=set_name == "val")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, self.hparams.val_set_names[dataloader_idx])

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, test_set_name(self.hparams.val_set_names[dataloader_idx]))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self(batch[0]).softmax(dim=1)

    def on_train_start(self) -> None:
        # not on_fit_start: estimated_stepping_batches builds the train loader, and built before
        # Lightning restores a checkpoint's loop state, the loader would miss its mid-epoch position
        choose_kernels(self.hparams.kernels, self.trainer.estimated_stepping_batches, self.device.type)

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        self.check_batch_norms()
        optimizer = self.optimizer_factory(parameter_groups(self.model, self.hparams.no_weight_decay))
        scheduler = self.scheduler_factory(optimizer) if self.scheduler_factory else None
        scheduler = with_warmup(optimizer, scheduler, self.hparams.warmup_epochs)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
