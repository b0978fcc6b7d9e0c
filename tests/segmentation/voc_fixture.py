"""A tiny PASCAL VOC 2012 tree: JPEG images, palette PNG masks with 255 boundaries, the split lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (40, 48)  # H, W of every fixture image


def voc_palette() -> list[int]:
    """VOC's colour map (class k's colour from the bits of k), 256 RGB triples flattened."""
    palette = []
    for k in range(256):
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def object_mask(index: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Background 0, one rectangle of class 1 + index % 20 with a one-pixel 255 boundary."""
    h, w = size
    mask = np.zeros((h, w), dtype=np.uint8)
    top, left = 4 + index % 5, 6 + index % 7
    mask[top - 1:top + 21, left - 1:left + 23] = 255
    mask[top:top + 20, left:left + 22] = 1 + index % 20
    return mask


def save_palette_mask(mask: np.ndarray, path: Path) -> None:
    """``mask`` (H, W) uint8 class indices as a mode-P PNG with VOC's palette, as VOC ships its masks."""
    png = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
    png.putpalette(voc_palette())
    png.save(path)


def write_voc(root: Path, train: int = 4, val: int = 2, size: tuple[int, int] = SIZE) -> Path:
    """Write ``root/VOCdevkit/VOC2012`` with ``train`` + ``val`` images; returns ``root``."""
    folder = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = {"train": [f"2007_{i:06d}" for i in range(train)], "val": [f"2008_{i:06d}" for i in range(val)]}
    for index, name in enumerate(names["train"] + names["val"]):
        mask = object_mask(index, size)
        image = rng.integers(0, 80, (*size, 3), dtype=np.uint8)
        image[mask > 0] = rng.integers(150, 255, 3, dtype=np.uint8)  # the object is bright
        Image.fromarray(image).save(folder / "JPEGImages" / f"{name}.jpg", quality=95)
        save_palette_mask(mask, folder / "SegmentationClass" / f"{name}.png")
    for split, ids in names.items():
        (folder / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{n}\n" for n in ids))
    return root
