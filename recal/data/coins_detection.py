"""The embedded detection demo's data: scikit-image's coins photo, its 24 coins boxed, no download ever.

One class, "coin" (label 1; ``num_classes`` 2 counts background 0, Faster R-CNN's convention;
RetinaNet, which has no background class, takes the same 2 and never predicts label 0). The
boxes come from :func:`recal.data.coins.coin_regions`. Training sees ``train_views`` augmented
views of the photo per epoch — random horizontal and vertical flips and a random crop keeping
``crop_scale`` … 1 of each side (a coin cut by the crop keeps its box when at least half of it
is inside, clipped to the crop; otherwise it is dropped) — and validation the photo itself,
whole, so the demo's mAP says how well the detector fits its own photo.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from recal.data.coins import coin_regions
from recal.data.detection_base import DetectionDataModule
from recal.data.sampling import SeededJointTransformDataset
from recal.errors import InvalidOptionError

__all__ = ["CoinsDetectionDataModule", "coins_item"]

VISIBLE_FRACTION = 0.5  # a cropped coin with less of its box inside is no longer a target
PHOTO_ID = 0


def coins_item() -> tuple[tv_tensors.Image, dict]:
    """The photo as a uint8 (3, H, W) image and its target: 24 coin boxes, label 1 each, image_id 0."""
    regions = coin_regions()
    image = tv_tensors.Image(torch.from_numpy(regions.image.copy()).permute(2, 0, 1))
    boxes = tv_tensors.BoundingBoxes(torch.from_numpy(regions.boxes.copy()), format="XYXY",
                                     canvas_size=tuple(image.shape[-2:]))
    return image, {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64), "image_id": PHOTO_ID}


class RepeatedPhoto(Dataset):
    """The photo ``length`` times: one epoch's worth of views before augmentation."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict]:
        return coins_item()


class RandomCropKeepingObjects:
    """Crop a random window of ``scale`` … 1 of each side; keep boxes at least half inside, clipped."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, image: Tensor, target: dict) -> tuple[Tensor, dict]:
        h, w = image.shape[-2:]
        s = torch.empty(2).uniform_(self.scale, 1.0)
        ch, cw = int(h * s[0]), int(w * s[1])
        top, left = int(torch.randint(h - ch + 1, ())), int(torch.randint(w - cw + 1, ()))
        boxes = target["boxes"]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        cropped = TF.clamp_bounding_boxes(TF.crop(boxes, top, left, ch, cw))
        inside = (cropped[:, 2] - cropped[:, 0]) * (cropped[:, 3] - cropped[:, 1])
        keep = inside >= VISIBLE_FRACTION * area
        kept = tv_tensors.wrap(cropped[keep], like=cropped)
        return TF.crop(image, top, left, ch, cw), {**target, "boxes": kept, "labels": target["labels"][keep]}


def as_float_item(image: Tensor, target: dict) -> tuple[Tensor, dict]:
    """The detector's input: a plain float image in [0, 1] and plain-tensor boxes."""
    return (TF.to_dtype(image, torch.float32, scale=True).as_subclass(Tensor),
            {**target, "boxes": target["boxes"].as_subclass(Tensor).float()})


class CoinViews:
    """The training views: flips, then a random crop (see the module docstring)."""

    def __init__(self, crop_scale: float) -> None:
        self.flips = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
        self.crop = RandomCropKeepingObjects(crop_scale) if crop_scale < 1 else None

    def __call__(self, image: Tensor, target: dict) -> tuple[Tensor, dict]:
        image, target = self.flips(image, target)
        if self.crop is not None:
            image, target = self.crop(image, target)
        return as_float_item(image, target)


class CoinsDetectionDataModule(DetectionDataModule):
    """The coins photo for detection: augmented views to train on, the photo itself to validate on.

    ``train_views`` views per epoch (their order and augmentation seeded by ``seed``);
    ``crop_scale`` the smallest side fraction a training crop keeps (1: no crop).
    """

    def __init__(self, batch_size: int = 4, train_views: int = 32, crop_scale: float = 0.7, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__(num_classes=2, batch_size=batch_size, num_workers=num_workers, seed=seed)
        if train_views < 1:
            raise InvalidOptionError(f"data.train_views={train_views}; expected a positive integer")
        if not 0.0 < crop_scale <= 1.0:
            raise InvalidOptionError(f"data.crop_scale={crop_scale}; expected a fraction in (0, 1]")
        self.train_views = train_views
        self.crop_scale = crop_scale
        self.classes = ["background", "coin"]

    def build_train(self) -> Dataset:
        return SeededJointTransformDataset(RepeatedPhoto(self.train_views), CoinViews(self.crop_scale), self.seed)

    def build_val(self) -> Dataset:
        return SeededJointTransformDataset(RepeatedPhoto(1), as_float_item, self.seed)

    def train_aspect_ratios(self) -> list[float]:
        h, w = coin_regions().image.shape[:2]
        return [w / h] * self.train_views
