"""The embedded coins photo: scikit-image's labelling gives 24 coins, each box the tight box of its mask."""

from __future__ import annotations

import numpy as np

from recal.data.coins import COIN_COUNT, coin_regions


def test_the_photo_holds_24_labelled_coins_with_tight_boxes() -> None:
    regions = coin_regions()
    assert regions.image.shape == (303, 384, 3) and regions.image.dtype == np.uint8
    assert regions.instances.max() == COIN_COUNT == len(regions.boxes)
    for k, (x1, y1, x2, y2) in enumerate(regions.boxes.astype(int), start=1):
        ys, xs = np.nonzero(regions.instances == k)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
        assert len(xs) > 500  # a coin, not a speck
    assert set(np.unique(regions.semantic)) == {0, 1}


def test_the_regions_are_read_only() -> None:
    regions = coin_regions()
    assert not regions.image.flags.writeable and not regions.instances.flags.writeable
