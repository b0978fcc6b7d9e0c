"""StyleTransferTask: feed-forward stylisation with a VGG-16 perceptual loss.

Johnson, Alahi & Fei-Fei, ECCV 2016, with pytorch/examples fast_neural_style's
conventions, on which its default loss weights depend: images 0–255
in the transformer, divided by 255 and ImageNet-normalised before VGG-16; content
loss = 1e5 · MSE at relu2_2; style loss = 1e10 · Σ MSE of Gram matrices (÷ C·H·W)
at relu1_2, relu2_2, relu3_3, relu4_3; Adam 1e-3. Johnson's total-variation term
is an option (``tv_weight``, 0 as in pytorch/examples).

The SRM paper (Lee, Kim & Nam, ICCV 2019) trains this network with BN, BN+SE,
BN+SRM and IN: ``norm`` picks one. The style image comes from the datamodule
(``style_image()``, see :class:`recal.data.content_images.ContentImagesDataModule`).

Logged: ``train/loss`` and ``train/{content,style,tv}_loss`` every step,
``val/…`` likewise per validation (scored on the clamped 0–255 output, as written;
training uses the unclamped output), and at each validation a grid (content row,
stylised row) written to ``<log_dir>/images/val_step<N>.png``. ``predict`` writes
one stylised image per input, same size, through :class:`StylizedImageWriter`.

The frozen VGG-16 is rebuilt from its weights file (or seed) in :meth:`setup` and
left out of checkpoints: 30 MB per file that the file on disk already holds.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric
from torchvision.utils import make_grid, save_image

from recal.errors import InvalidOptionError
from recal.tasks.finite import stop_if_not_finite
from recal.models.style_net import (CONTENT_LAYER, STYLE_LAYERS, Norm, TransformerNet, VGG16Features,
                                    gram_matrix, load_vgg16_features, random_vgg16_features, stylize)

__all__ = ["StyleTransferTask", "StylizedImageWriter", "build_loss_network", "perceptual_losses"]

LOSS_NAMES = ("loss", "content_loss", "style_loss", "tv_loss")


def fast_style_optimizer(params: Iterable) -> Optimizer:
    """pytorch/examples fast_neural_style's optimiser: Adam, lr 1e-3."""
    return torch.optim.Adam(params, lr=1e-3)


def build_loss_network(vgg_weights: Optional[str], allow_random: bool, seed: int = 0) -> VGG16Features:
    """The VGG-16 loss network from ``vgg_weights``, or a seeded random one when explicitly allowed.

    Without weights and without ``allow_random`` this is a user error: a random
    loss network trains, but its "style" is not what the paper's figure shows.
    """
    if vgg_weights is not None:
        return load_vgg16_features(vgg_weights)
    if not allow_random:
        raise InvalidOptionError(
            "the VGG-16 perceptual loss needs ImageNet weights: set model.init_args.vgg_weights to torchvision's "
            "vgg16 state-dict file (vgg16-397923af.pth from https://download.pytorch.org/models/), or set "
            "model.init_args.allow_random_vgg true for a test or demo with a randomly initialised loss network")
    warnings.warn("STYLE TRANSFER WITH A RANDOMLY INITIALISED VGG-16 LOSS NETWORK (allow_random_vgg): fine for "
                  "tests and demos, meaningless for the paper's comparison; set model.init_args.vgg_weights",
                  UserWarning, stacklevel=2)
    return random_vgg16_features(seed)


def total_variation(images: Tensor) -> Tensor:
    """Johnson et al.'s TV regulariser: squared neighbour differences, summed per image, batch mean."""
    dx = images[..., :-1, :-1] - images[..., :-1, 1:]
    dy = images[..., :-1, :-1] - images[..., 1:, :-1]
    return (dx.pow(2) + dy.pow(2)).sum(dim=(1, 2, 3)).mean()


def perceptual_losses(
    loss_net: VGG16Features,
    style_grams: dict[str, Tensor],
    output: Tensor,
    content: Tensor,
    content_weight: float = 1e5,
    style_weight: float = 1e10,
    tv_weight: float = 0.0,
) -> dict[str, Tensor]:
    """Weighted content, style and TV losses of a stylised batch, and their sum under ``loss``.

    ``output`` and ``content`` are 0–255 batches; ``style_grams`` the (1, C, C)
    Gram matrices of the style image per layer of :data:`STYLE_LAYERS`.
    """
    out_features = loss_net(output)
    with torch.no_grad():
        # Only relu2_2 of the content is needed: stop there (half of VGG's cost up to relu4_3 is beyond it).
        target = loss_net(content, until=CONTENT_LAYER)[CONTENT_LAYER]
    content_loss = content_weight * nn.functional.mse_loss(out_features[CONTENT_LAYER], target)
    style_loss = style_weight * sum(
        nn.functional.mse_loss(gram := gram_matrix(out_features[k]), style_grams[k].expand_as(gram))
        for k in STYLE_LAYERS)
    tv_loss = tv_weight * total_variation(output) if tv_weight else output.new_zeros(())
    return {"loss": content_loss + style_loss + tv_loss, "content_loss": content_loss,
            "style_loss": style_loss, "tv_loss": tv_loss}


class StylizedImageWriter(BasePredictionWriter):
    """Writes each stylised image to ``<output_dir>/<input's relative path>.png``, same size as the input.

    ``output_dir`` None means ``<trainer.log_dir>/stylized``. The images are not
    also kept in memory (``return_predictions`` off): a folder of photos would
    otherwise pile up as float tensors until ``predict`` ends.
    """

    def __init__(self, output_dir: Optional[str] = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.written: list[Path] = []

    def folder(self, trainer: L.Trainer) -> Path:
        """Where the images go: ``output_dir``, else ``<log_dir>/stylized``."""
        if self.output_dir:
            return Path(self.output_dir)
        return Path(trainer.log_dir or trainer.default_root_dir) / "stylized"

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.predict_loop.return_predictions = False
        self.written = []

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        for image, name in zip(prediction, batch[1]):
            path = (self.folder(trainer) / name).with_suffix(".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(image / 255.0, path)
            self.written.append(path)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            print(f"wrote {len(self.written)} stylised image(s) to {self.folder(trainer)}")


class StyleTransferTask(L.LightningModule):
    """Train a feed-forward stylisation network against one style image.

    Args:
        norm: the transformer's normalisation: ``in``, ``bn``, ``bn_se``, ``bn_srm``.
        width: transformer stem width (32); 2× and 4× after each downsampling.
        residual_blocks: residual blocks at 1/4 resolution (5).
        content_weight: weight of the relu2_2 content MSE (1e5, pytorch/examples).
        style_weight: weight of the summed Gram MSEs (1e10, pytorch/examples).
        tv_weight: weight of the total-variation term (0; Johnson et al. used 1e-6 to 1e-4).
        vgg_weights: torchvision VGG-16 state-dict file for the loss network.
        allow_random_vgg: without ``vgg_weights``, use a randomly initialised loss
            network seeded by ``seed`` (tests and demos; warns loudly).
        seed: seeds that random network; cli.py links it to ``seed_everything``.
        optimizer: optimiser factory; default Adam 1e-3.
        lr_scheduler: optional step-wise schedule factory.
        output_dir: where ``predict`` writes; None = ``<log_dir>/stylized``.
    """

    def __init__(
        self,
        norm: Norm = "in",
        width: int = 32,
        residual_blocks: int = 5,
        content_weight: float = 1e5,
        style_weight: float = 1e10,
        tv_weight: float = 0.0,
        vgg_weights: Optional[str] = None,
        allow_random_vgg: bool = False,
        seed: int = 0,
        optimizer: OptimizerCallable = fast_style_optimizer,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        output_dir: Optional[str] = None,
    ) -> None:
        super().__init__()
        # output_dir is not part of the trained model: left out of the checkpoint's hyperparameters,
        # which LightningCLI would otherwise apply over `predict --model.init_args.output_dir`.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "output_dir"])
        self.output_dir = output_dir
        self.net = TransformerNet(norm, width, residual_blocks)
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.loss_net: Optional[VGG16Features] = None
        self.style_grams: Optional[dict[str, Tensor]] = None
        self.val_losses = nn.ModuleDict({name: MeanMetric(nan_strategy="disable") for name in LOSS_NAMES})  # NaN shows
        self._grid: list[tuple[Tensor, Tensor]] = []

    def forward(self, images: Tensor) -> Tensor:
        """Stylise a 0–255 batch (any size; output clamped to 0–255, same size)."""
        return stylize(self.net, images)

    # ------------------------------------------------------------------ loss network
    def setup(self, stage: str) -> None:
        self.style_grams = None  # from this run's datamodule, on this run's device
        # predict needs no loss network (and no VGG file on the machine that stylises).
        if stage != "predict" and self.loss_net is None:
            hp = self.hparams
            self.loss_net = build_loss_network(hp.vgg_weights, hp.allow_random_vgg, hp.seed)

    def targets(self) -> dict[str, Tensor]:
        """Gram matrices of the datamodule's style image, computed once on this device."""
        if self.style_grams is None:
            datamodule = self.trainer.datamodule if self._trainer is not None else None
            if datamodule is None or not hasattr(datamodule, "style_image"):
                raise InvalidOptionError("StyleTransferTask needs a datamodule with a style image "
                                         "(recal.data.content_images.ContentImagesDataModule)")
            style = datamodule.style_image().to(self.device).unsqueeze(0)
            with torch.no_grad():
                features = self.loss_net(style)
            self.style_grams = {k: gram_matrix(features[k]) for k in STYLE_LAYERS}
        return self.style_grams

    def losses(self, output: Tensor, content: Tensor) -> dict[str, Tensor]:
        hp = self.hparams
        return perceptual_losses(self.loss_net, self.targets(), output, content,
                                 hp.content_weight, hp.style_weight, hp.tv_weight)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("loss_net.")}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        # Checkpoints leave the frozen loss network out (on_save_checkpoint); keep the one built in setup.
        if self.loss_net is not None:
            state_dict = {**{f"loss_net.{k}": v for k, v in self.loss_net.state_dict().items()}, **state_dict}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        content = batch[0]
        losses = self.losses(self.net(content), content)
        stop_if_not_finite(self, losses["loss"], "lower the learning rate or the style weight")
        for name, value in losses.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False, prog_bar=name == "loss",
                     batch_size=content.shape[0])
        return losses["loss"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        content = batch[0]
        # Score the image as it is written (clamped to 0–255), like style_compare does; training
        # keeps pytorch/examples' unclamped output. A net whose eval-mode output leaves 0–255 (e.g.
        # unsettled BatchNorm running statistics) would otherwise be scored on values nobody sees.
        output = self(content)
        for name, value in self.losses(output, content).items():
            self.val_losses[name].update(value, weight=content.shape[0])
            self.log(f"val/{name}", self.val_losses[name], prog_bar=name == "loss")
        # The validation set is the few grid images (data.val_images): keep them all for the grid.
        self._grid.append((content.detach().cpu(), output.detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        grid_batches, self._grid = self._grid, []
        if not grid_batches or not self.trainer.is_global_zero:
            return
        content = torch.cat([c for c, _ in grid_batches])
        output = torch.cat([o for _, o in grid_batches])
        folder = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        # Row 1 the content crops, row 2 their stylisations.
        grid = make_grid(torch.cat([content, output]) / 255.0, nrow=content.shape[0], padding=2)
        save_image(grid, folder / f"val_step{self.global_step:06d}.png")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self(batch[0])

    def configure_callbacks(self) -> list[Callback]:
        return [StylizedImageWriter(self.output_dir)]

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}
