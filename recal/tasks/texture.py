"""TextureTask: texture classification (DTD), from scratch or fine-tuned.

A :class:`~recal.tasks.classification.ClassificationTask` (whose ``weights`` option starts
the backbone from a torchvision ResNet state dict or a recal checkpoint, with a new 47-class
head) with two additions:

- separate learning rates: ``head_lr`` for the classifier head and ``backbone_lr`` for the
  rest (None = the optimiser's lr); the SRM no-weight-decay group is kept within each.
- multi-crop evaluation: ``eval_crops`` 5 or 10 averages the softmax over the five
  (corners + centre) or ten (and their mirrors) ``crop_size`` crops of each evaluation
  image — give the datamodule a larger evaluation crop (DTD: ``eval_crop_size: 256``).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from recal.errors import InvalidOptionError
from recal.tasks.classification import ClassificationTask

__all__ = ["TextureTask", "multi_crop"]



def multi_crop(x: Tensor, size: int, crops: int) -> Tensor:
    """(N, C, H, W) → (crops·N, C, size, size): five corner/centre crops, or ten with mirrors."""
    if min(x.shape[-2:]) < size:
        raise InvalidOptionError(
            f"model.crop_size={size} is larger than the {tuple(x.shape[-2:])} evaluation images; give the "
            f"datamodule a larger evaluation crop (e.g. data.eval_crop_size: {size + size // 7})")
    views = TF.ten_crop(x, [size, size]) if crops == 10 else TF.five_crop(x, [size, size])
    return torch.cat(list(views))


class TextureTask(ClassificationTask):
    """Texture classification; every :class:`ClassificationTask` option plus the ones below.

    Args:
        backbone_lr: learning rate of everything but the head (None: the optimiser's).
        head_lr: learning rate of the classifier head (None: the optimiser's).
        eval_crops: 1, or 5 / 10 crops averaged at evaluation.
        crop_size: side of the evaluation crops when ``eval_crops`` > 1.
    """

    def __init__(
        self,
        backbone_lr: Optional[float] = None,
        head_lr: Optional[float] = None,
        eval_crops: Literal[1, 5, 10] = 1,
        crop_size: int = 224,
        **kwargs: Any,
    ) -> None:
        # build_model (called by the parent) reads these through self.hparams
        super().__init__(**kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Logits; in eval mode with ``eval_crops`` > 1, log of the crop-averaged softmax."""
        crops = self.hparams.eval_crops
        if self.training or crops == 1:
            return self.model(x)
        probs = self.model(multi_crop(x, self.hparams.crop_size, crops)).softmax(dim=1)
        # log-probabilities behave as logits for cross-entropy, top-k and softmax
        return probs.view(crops, x.shape[0], -1).mean(dim=0).clamp_min(1e-12).log()

    def head_parameters(self) -> list[nn.Parameter]:
        """The classifier head's parameters (their own learning rate, ``head_lr``)."""
        return list(self.model.get_classifier().parameters())

    def split_head_groups(self, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Split each parameter group into backbone and head parts with their learning rates."""
        head = {id(p) for p in self.head_parameters()}
        out = []
        for group in groups:
            for part, lr in (("backbone", self.hparams.backbone_lr), ("head", self.hparams.head_lr)):
                params = [p for p in group["params"] if (id(p) in head) == (part == "head")]
                if params:
                    extra = {} if lr is None else {"lr": lr}
                    out.append({**group, "params": params, "name": f"{part}/{group.get('name', 'params')}", **extra})
        return out

    def configure_optimizers(self) -> Any:
        # The parent builds groups, optimiser, schedule and warmup; only the groups change here,
        # so its optimiser factory is wrapped for the duration of the call.
        factory = self.optimizer_factory
        self.optimizer_factory = lambda groups: factory(self.split_head_groups(list(groups)))
        try:
            return super().configure_optimizers()
        finally:
            self.optimizer_factory = factory
