"""A tiny COCO 2017 layout for tests: a few JPEGs and instances JSONs with real COCO category ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# real COCO ids and names: labels are category ids, so the gaps matter
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 18, "name": "dog", "supercategory": "animal"},
              {"id": 62, "name": "chair", "supercategory": "furniture"}]

# per split: (width, height, [(category_id, [x, y, w, h], iscrowd), …]) for each image
IMAGES = {
    "train": [
        (96, 64, [(1, [10, 8, 30, 40], 0), (18, [50, 20, 30, 30], 0)]),
        (64, 96, [(62, [5, 10, 40, 50], 0), (1, [0, 60, 20, 30], 1)]),   # one crowd box
        (80, 80, [(18, [20, 20, 40, 40], 0), (1, [70, 10, 0, 20], 0)]),  # one degenerate box (width 0)
        (96, 64, [(1, [30, 10, 40, 45], 0)]),
        (72, 72, []),                                                     # no box: skipped in training
    ],
    "val": [
        (96, 64, [(1, [12, 6, 28, 42], 0), (62, [50, 10, 35, 45], 0)]),
        (64, 80, [(18, [8, 12, 40, 40], 0)]),
    ],
}


def _draw(width: int, height: int, boxes: list[tuple[int, list[float], int]], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    for category, (x, y, w, h), _ in boxes:
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        pixels[y0:y1, x0:x1] = (category * 37 % 255, 200, 255 - category * 3)
    return Image.fromarray(pixels)


def write_coco(root: Path, images: dict | None = None) -> Path:
    """Write ``root/annotations/instances_{split}2017.json`` and ``root/{split}2017/*.jpg``; returns ``root``."""
    images = IMAGES if images is None else images
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    annotation_id = 1
    for split, entries in images.items():
        folder = root / f"{split}2017"
        folder.mkdir(exist_ok=True)
        infos, annotations = [], []
        for k, (width, height, boxes) in enumerate(entries):
            image_id = 1000 * (split == "val") + k + 1
            name = f"{image_id:012d}.jpg"
            _draw(width, height, boxes, image_id).save(folder / name, quality=95)
            infos.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for category, bbox, crowd in boxes:
                annotations.append({"id": annotation_id, "image_id": image_id, "category_id": category,
                                    "bbox": bbox, "area": float(bbox[2] * bbox[3]), "iscrowd": crowd,
                                    "segmentation": [[bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1],
                                                      bbox[0] + bbox[2], bbox[1] + bbox[3]]]})
                annotation_id += 1
        data = {"images": infos, "annotations": annotations, "categories": CATEGORIES}
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


def edit_annotations(root: Path, split: str, edit) -> None:
    """Rewrite ``split``'s JSON with ``edit(data)`` applied (for the bad-input tests)."""
    path = root / "annotations" / f"instances_{split}2017.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
