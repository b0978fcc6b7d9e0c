"""``detections.json`` and drawn images: what a detection ``predict`` found, in COCO's results format.

``<trainer.log_dir>/detections.json`` (the run's predict folder, :mod:`recal.run_folder`) is a
list with one entry per detection, ``{"image_id", "category_id", "bbox": [x, y, width, height],
"score"}`` — the file pycocotools' ``COCO.loadRes`` reads; ``category_id`` is the detector's
label (COCO: the category id itself), boxes are in the image's own pixels (2 decimals), scores
have 4. Every detection the model returned is listed (its ``score_thresh``, 0.05 by default,
already applied). ``images/<image_id>.png`` shows the first ``max_images`` images with the
boxes scoring at least ``score_threshold`` drawn (``torchvision.utils.draw_bounding_boxes``),
labelled with the class name where the datamodule has ``classes`` and the score.

Active only for a :class:`~recal.tasks.detection.DetectionTask`, so it sits in every run's
callbacks. Under DDP each rank writes ``detections.rank<k>.json``; after a barrier rank 0
merges them into ``detections.json`` (sorted by image id) and deletes the parts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor
from torchvision.io import write_png
from torchvision.utils import draw_bounding_boxes

from recal.tasks.detection import DetectionTask

__all__ = ["DetectionsWriter", "coco_results"]


def coco_results(image_id: int, boxes: Tensor, scores: Tensor, labels: Tensor) -> list[dict[str, Any]]:
    """COCO results entries for one image's ``x1, y1, x2, y2`` boxes."""
    entries = []
    for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
        entries.append({"image_id": int(image_id), "category_id": int(label),
                        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                        "score": round(float(score), 4)})
    return entries


class DetectionsWriter(BasePredictionWriter):
    """Writes ``detections.json`` and ``images/`` under the predict run's folder (see the module docstring).

    Args:
        filename: the results file (relative to ``trainer.log_dir``, or absolute).
        score_threshold: the lowest score drawn on the images (the JSON keeps every detection).
        max_images: how many images to draw (per rank); 0 draws none.
    """

    def __init__(self, filename: str = "detections.json", score_threshold: float = 0.5, max_images: int = 50) -> None:
        super().__init__(write_interval="batch")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold={score_threshold}; expected a score in [0, 1]")
        if max_images < 0:
            raise ValueError(f"max_images={max_images}; expected 0 or more")
        self.filename = filename
        self.score_threshold = score_threshold
        self.max_images = max_images
        self.path: Optional[Path] = None
        self.entries: list[dict[str, Any]] = []
        self.drawn = 0
        self._active = False
        self._classes: Optional[Sequence[str]] = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = isinstance(pl_module, DetectionTask)
        if not self._active:
            return
        self.path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries, self.drawn = [], 0
        self._classes = getattr(trainer.datamodule, "classes", None) if trainer.datamodule is not None else None
        trainer.predict_loop.return_predictions = False

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        if not self._active:
            return
        images = batch[0]
        for image, found in zip(images, prediction):
            self.entries += coco_results(found["image_id"], found["boxes"], found["scores"], found["labels"])
            if self.drawn < self.max_images:
                self._draw(image, found)
                self.drawn += 1

    def _label(self, label: int, score: float) -> str:
        names = self._classes
        name = names[label] if names is not None and 0 <= label < len(names) and names[label] else str(label)
        return f"{name} {score:.2f}"

    def _draw(self, image: Tensor, found: dict[str, Any]) -> None:
        keep = found["scores"] >= self.score_threshold
        pixels = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        labels = [self._label(int(c), float(s)) for c, s in zip(found["labels"][keep], found["scores"][keep])]
        drawn = draw_bounding_boxes(pixels, found["boxes"][keep], labels=labels, colors="red", width=2)
        folder = self.path.parent / "images"
        folder.mkdir(exist_ok=True)
        write_png(drawn, str(folder / f"{found['image_id']}.png"))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        if trainer.world_size == 1:
            self.path.write_text(json.dumps(self.entries))
            print(f"wrote {len(self.entries)} detection(s) to {self.path}")
            return
        part = self.path.with_name(f"{self.path.stem}.rank{trainer.global_rank}{self.path.suffix}")
        part.write_text(json.dumps(self.entries))
        trainer.strategy.barrier()  # every rank's part is complete before rank 0 reads it
        if trainer.is_global_zero:
            parts = [self.path.with_name(f"{self.path.stem}.rank{r}{self.path.suffix}")
                     for r in range(trainer.world_size)]
            merged = sorted((e for p in parts for e in json.loads(p.read_text())), key=lambda e: e["image_id"])
            self.path.write_text(json.dumps(merged))
            for p in parts:
                p.unlink()
            print(f"wrote {len(merged)} detection(s) to {self.path}")
