"""The embedded detection and segmentation photo: scikit-image's ``coins``, no download ever.

``skimage.data.coins()`` is a real 303×384 grayscale photograph of 24 coins on a dark
background, shipped inside scikit-image. Its objects come from scikit-image's own labelling,
as in its gallery's region-based segmentation: a Sobel elevation map, markers from the
intensities (< 30 background, > 150 coin), a watershed, holes filled, connected components
labelled, and components under ``MIN_AREA`` pixels (specks of the watershed) dropped. That gives
the 24 coins, each one instance with a mask and a box — the detection and segmentation demos'
ground truth (one class, "coin").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

MIN_AREA = 50  # pixels; the watershed leaves a 2-pixel speck besides the coins
COIN_COUNT = 24


@dataclass(frozen=True)
class CoinRegions:
    """The coins photo and its labelled coins.

    ``image``: (H, W, 3) uint8 (the grayscale photo repeated to RGB); ``instances``: (H, W) int64,
    0 background and 1..K one coin each; ``boxes``: (K, 4) float32 ``x1, y1, x2, y2`` in pixels
    (x2/y2 exclusive, torchvision's convention), row k-1 the box of instance k.
    """

    image: np.ndarray
    instances: np.ndarray
    boxes: np.ndarray

    @property
    def semantic(self) -> np.ndarray:
        """(H, W) int64 class map: 0 background, 1 coin."""
        return (self.instances > 0).astype(np.int64)


@functools.lru_cache(maxsize=1)
def coin_regions() -> CoinRegions:
    """The coins photo with its 24 coins labelled by scikit-image (computed once per process)."""
    from skimage import data, filters, segmentation

    photo = data.coins()
    markers = np.zeros_like(photo, dtype=np.uint8)
    markers[photo < 30] = 1
    markers[photo > 150] = 2
    regions = segmentation.watershed(filters.sobel(photo), markers)
    labelled, count = ndi.label(ndi.binary_fill_holes(regions == 2))
    areas = np.bincount(labelled.ravel(), minlength=count + 1)
    keep = np.flatnonzero(areas >= MIN_AREA)
    keep = keep[keep > 0]
    relabel = np.zeros(count + 1, dtype=np.int64)
    relabel[keep] = np.arange(1, len(keep) + 1)
    instances = relabel[labelled]
    boxes = np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop]
                      for s in ndi.find_objects(instances)], dtype=np.float32)
    image = np.repeat(photo[:, :, None], 3, axis=2)
    for array in (image, instances, boxes):
        array.setflags(write=False)
    return CoinRegions(image, instances, boxes)
