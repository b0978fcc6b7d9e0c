"""Transform builders: output shapes, dtype, normalisation and which steps are random."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from recal.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, cifar_eval, cifar_train, imagenet_eval,
                                   imagenet_train)


def photo(h: int = 50, w: int = 70) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_imagenet_train_crops_to_size():
    x = imagenet_train(size=24)(photo())
    assert type(x) is torch.Tensor and x.dtype == torch.float32 and x.shape == (3, 24, 24)


def test_imagenet_eval_is_resize_then_centre_crop():
    x = imagenet_eval(size=24, resize=28)(photo())
    assert x.shape == (3, 24, 24)
    assert torch.equal(x, imagenet_eval(size=24, resize=28)(photo()))
    # A constant image stays constant and is normalised channel by channel.
    flat = imagenet_eval(size=8, resize=10)(Image.new("RGB", (30, 20), (255, 0, 128)))
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(flat.mean((1, 2)), torch.tensor(expected), atol=1e-5)


def test_cifar_train_pads_crops_and_optionally_flips():
    image = torch.arange(3 * 32 * 32, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(3, 32, 32)
    steps = [type(t).__name__ for t in cifar_train(flip=False).transforms]
    assert "RandomHorizontalFlip" not in steps and "RandomCrop" in steps
    assert "RandomHorizontalFlip" in [type(t).__name__ for t in cifar_train().transforms]
    torch.manual_seed(0)
    outs = [cifar_train(padding=4)(image) for _ in range(8)]
    assert all(o.shape == (3, 32, 32) for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert torch.equal(cifar_eval()(image), cifar_eval()(Image.fromarray(image.permute(1, 2, 0).numpy())))
