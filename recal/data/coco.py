"""COCO 2017 detection through torchvision's ``CocoDetection``, filtered as torchvision's detection references do.

Layout (the official one; nothing is downloaded)::

    <root>/annotations/instances_train2017.json
    <root>/annotations/instances_val2017.json
    <root>/train2017/*.jpg
    <root>/val2017/*.jpg

Items come from ``CocoDetection`` wrapped by ``torchvision.datasets.wrap_dataset_for_transforms_v2``
(target keys ``boxes``, ``labels``, ``image_id``, ``iscrowd``): boxes in ``x1, y1, x2, y2`` pixels,
labels the **COCO category ids** themselves (1 person … 90 toothbrush, with gaps), so
``num_classes`` is 91 — background 0 plus the largest id, as torchvision's COCO detectors and
references count them. Filtering follows ``references/detection/coco_utils.py``:

- boxes are clipped to the image and a box left without width or height is dropped
  (``ConvertCocoPolysToMask``), in every split;
- training drops crowd boxes (``iscrowd`` 1) from its targets, and the training split drops
  images whose annotations are empty or all of width or height ≤ 1 px
  (``_coco_remove_images_without_annotations``); validation keeps every image and passes
  ``iscrowd`` to the metric, which treats crowd regions as COCO's evaluation does.

What was skipped and dropped is counted in one warning per split. The training augmentation is
the references' ``hflip`` preset, a horizontal flip with probability ``hflip_prob``, seeded by
(seed, epoch, index) (:mod:`recal.data.detection_base`). Images keep their size: the detector
resizes them (``model.min_size`` / ``model.max_size``). A missing file, malformed JSON, an
image listed but absent, or a category id not among ``categories`` stops with one line naming
the file and the problem.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.transforms.v2 import functional as TF

from recal.data.detection_base import DetectionDataModule
from recal.data.sampling import SeededJointTransformDataset
from recal.errors import DatasetNotFoundError, InvalidOptionError

__all__ = ["CocoDataModule", "CocoSplitSummary", "coco_split", "usable_boxes"]

COCO_NUM_CLASSES = 91
TARGET_KEYS = {"boxes", "labels", "image_id", "iscrowd"}


def annotation_file(root: Path, split: str) -> Path:
    return root / "annotations" / f"instances_{split}2017.json"


def image_folder(root: Path, split: str) -> Path:
    return root / f"{split}2017"


def clipped_xyxy(bbox: list[float], width: float, height: float) -> tuple[float, float, float, float]:
    """A COCO ``x, y, w, h`` box as ``x1, y1, x2, y2`` clipped to the image."""
    x, y, w, h = bbox
    return (min(max(x, 0.0), width), min(max(y, 0.0), height),
            min(max(x + w, 0.0), width), min(max(y + h, 0.0), height))


def usable_boxes(boxes: Tensor) -> Tensor:
    """Which ``x1, y1, x2, y2`` boxes keep a width and a height (the references' degenerate-box rule)."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def _has_valid_annotation(annotations: list[dict]) -> bool:
    """The references' test: some annotation, and not every box ≤ 1 px wide or high."""
    return bool(annotations) and not all(any(o <= 1 for o in a["bbox"][2:]) for a in annotations)


@dataclass(frozen=True)
class CocoSplitSummary:
    """What filtering did to a split: images listed, positions kept, boxes dropped; the kept images' width / height."""

    images: int
    kept: list[int]
    degenerate_boxes: int
    aspect_ratios: list[float]
    category_names: dict[int, str]

    def message(self, split: str) -> str | None:
        skipped = self.images - len(self.kept)
        if not skipped and not self.degenerate_boxes:
            return None
        parts = []
        if skipped:
            parts.append(f"skipped {skipped:,} of {self.images:,} images without usable boxes")
        if self.degenerate_boxes:
            parts.append(f"dropped {self.degenerate_boxes:,} degenerate box(es) (no width or height inside the image)")
        return f"COCO {split}2017: " + " and ".join(parts) + ", as torchvision's detection references do"


def _read_coco(images: Path, annotations: Path) -> CocoDetection:
    """``CocoDetection`` over the files, with file problems as one-line errors."""
    if not annotations.is_file():
        raise DatasetNotFoundError(f"COCO annotation file {annotations} does not exist; expected the official "
                                   "layout <root>/annotations/instances_{train,val}2017.json")
    if not images.is_dir():
        raise DatasetNotFoundError(f"COCO image folder {images} does not exist; expected <root>/{images.name}/")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            return CocoDetection(str(images), str(annotations))
    except json.JSONDecodeError as error:
        raise DatasetNotFoundError(f"COCO annotation file {annotations} is not valid JSON: {error}") from None
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise DatasetNotFoundError(f"COCO annotation file {annotations} is not a COCO instances file: "
                                   f"{type(error).__name__} {error}") from None


def _check_contents(coco: CocoDetection, annotations: Path, images: Path, num_classes: int) -> None:
    data = coco.coco.dataset
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetNotFoundError(f"COCO annotation file {annotations} has no {key!r} list")
    categories = {c["id"] for c in data["categories"]}
    for annotation in data["annotations"]:
        if annotation.get("category_id") not in categories:
            raise DatasetNotFoundError(
                f"COCO annotation file {annotations}: annotation {annotation.get('id')} has category_id "
                f"{annotation.get('category_id')!r}, not among its categories {sorted(categories)}")
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise DatasetNotFoundError(f"COCO annotation file {annotations}: annotation {annotation.get('id')} has "
                                       f"bbox {bbox!r}; expected [x, y, width, height]")
    if categories and max(categories) >= num_classes:
        raise InvalidOptionError(f"data.num_classes={num_classes}, but {annotations} has category id "
                                 f"{max(categories)}; labels are category ids, so num_classes must exceed the largest")
    missing = [info["file_name"] for info in data["images"] if not (images / info["file_name"]).is_file()]
    if missing:
        more = f" (and {len(missing) - 1:,} more)" if len(missing) > 1 else ""
        raise DatasetNotFoundError(f"image {images / missing[0]} listed in {annotations} does not exist{more}")


def _summarise(coco: CocoDetection, train: bool) -> CocoSplitSummary:
    kept, degenerate, ratios = [], 0, []
    for position, image_id in enumerate(coco.ids):
        info = coco.coco.imgs[image_id]
        annotations = coco.coco.imgToAnns.get(image_id, [])
        boxes = [clipped_xyxy(a["bbox"], info["width"], info["height"]) for a in annotations
                 if not (train and a.get("iscrowd", 0))]
        degenerate += sum(1 for x1, y1, x2, y2 in boxes if not (x2 > x1 and y2 > y1))
        if not train or _has_valid_annotation(annotations):
            kept.append(position)
            ratios.append(info["width"] / info["height"])
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco.coco.dataset["categories"]}
    return CocoSplitSummary(len(coco.ids), kept, degenerate, ratios, names)


def coco_split(root: str | Path, split: str, num_classes: int = COCO_NUM_CLASSES) -> tuple[Dataset, CocoSplitSummary]:
    """The checked, filtered ``split`` ("train" or "val"): a v2-wrapped ``CocoDetection`` subset and its summary."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"COCO root {root} does not exist or is not a folder")
    annotations, images = annotation_file(root, split), image_folder(root, split)
    coco = _read_coco(images, annotations)
    _check_contents(coco, annotations, images, num_classes)
    summary = _summarise(coco, train=split == "train")
    wrapped = wrap_dataset_for_transforms_v2(coco, target_keys=TARGET_KEYS)
    return Subset(wrapped, summary.kept), summary


class CocoTargets:
    """Clip boxes, drop degenerate ones (and crowd ones in training), flip in training; float image out."""

    def __init__(self, train: bool, hflip_prob: float) -> None:
        self.train = train
        self.hflip_prob = hflip_prob

    def __call__(self, image, target: dict) -> tuple[Tensor, dict]:
        image = TF.to_image(image)
        size = tuple(image.shape[-2:])
        boxes = target.get("boxes", tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=size))
        boxes = TF.clamp_bounding_boxes(boxes)
        labels = target.get("labels", torch.zeros(0, dtype=torch.int64))
        crowd = torch.as_tensor(target.get("iscrowd", [0] * len(labels)), dtype=torch.int64)
        keep = usable_boxes(boxes)
        if self.train:
            keep &= crowd == 0
        boxes = tv_tensors.wrap(boxes[keep], like=boxes)
        if self.train and torch.rand(()) < self.hflip_prob:
            image, boxes = TF.horizontal_flip(image), TF.horizontal_flip(boxes)
        out = {"boxes": boxes.as_subclass(Tensor).float(), "labels": labels[keep].long(),
               "image_id": int(target["image_id"])}
        if not self.train:
            out["iscrowd"] = crowd[keep].long()
        return TF.to_dtype(image, torch.float32, scale=True).as_subclass(Tensor), out


class CocoDataModule(DetectionDataModule):
    """COCO 2017 detection (train2017 / val2017; see the module docstring for layout, labels and filtering).

    ``num_classes`` is 91 (category ids as labels, background 0). ``aspect_ratio_group_factor``
    3 is the references' default grouping (8 aspect-ratio groups); 0 turns it off.
    """

    def __init__(self, root: str = "data/coco", batch_size: int = 2, num_workers: int = 4, seed: int = 0,
                 aspect_ratio_group_factor: int = 3, hflip_prob: float = 0.5,
                 num_classes: int = COCO_NUM_CLASSES) -> None:
        super().__init__(num_classes=num_classes, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         aspect_ratio_group_factor=aspect_ratio_group_factor)
        if not 0.0 <= hflip_prob <= 1.0:
            raise InvalidOptionError(f"data.hflip_prob={hflip_prob}; expected a probability in [0, 1]")
        self.root = root
        self.hflip_prob = hflip_prob
        self._train_ratios: list[float] | None = None
        self.classes: list[str] | None = None  # by category id, once a split is read

    def _split(self, split: str) -> Dataset:
        dataset, summary = coco_split(self.root, split, self.num_classes)
        message = summary.message(split)
        if message:
            rank_zero_warn(message)
        if split == "train":
            self._train_ratios = summary.aspect_ratios
        # label → name for drawn predictions; the ids' gaps stay empty names
        self.classes = [summary.category_names.get(i, "") for i in range(self.num_classes)]
        transform = CocoTargets(train=split == "train", hflip_prob=self.hflip_prob)
        return SeededJointTransformDataset(dataset, transform, self.seed)

    def build_train(self) -> Dataset:
        return self._split("train")

    def build_val(self) -> Dataset:
        return self._split("val")

    def train_aspect_ratios(self) -> list[float]:
        if self._train_ratios is None:
            self.setup("fit")
        return self._train_ratios
