"""Named train / eval transform pipelines (torchvision ``transforms.v2``).

Every pipeline takes a PIL image or a uint8 CHW tensor and returns a normalised float32 CHW
tensor (a plain ``torch.Tensor``). Random transforms draw from torch's global generator; run
them through :class:`recal.data.sampling.SeededTransformDataset` to make them reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "DIGITS_MEAN", "DIGITS_STD",
    "IMAGENET_MEAN", "IMAGENET_STD", "SVHN_MEAN", "SVHN_STD",
    "cifar_eval", "cifar_train", "imagenet_eval", "imagenet_train", "normalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-channel statistics of the training splits, as commonly used for these datasets.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)
# scikit-learn's digits after recal.data.embedded's scaling and 32x32 upsampling (all 1,797).
DIGITS_MEAN = (0.3052, 0.3052, 0.3052)
DIGITS_STD = (0.3236, 0.3236, 0.3236)

Stats = Sequence[float]


def normalize(mean: Stats, std: Stats) -> list[v2.Transform]:
    """Steps that turn a PIL image or uint8 tensor into a normalised float32 plain tensor."""
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), v2.ToPureTensor()]


def imagenet_train(size: int = 224, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> v2.Compose:
    """RandomResizedCrop(size) + horizontal flip + normalise: the ImageNet training recipe.

    Cropping runs on the PIL image (before conversion to a tensor), as the official SRM
    imagenet.py does, which keeps the resize in Pillow.
    """
    return v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip(), *normalize(mean, std)])


def imagenet_eval(size: int = 224, resize: int = 256, mean: Stats = IMAGENET_MEAN,
                  std: Stats = IMAGENET_STD) -> v2.Compose:
    """Resize the short side to ``resize``, centre-crop ``size``, normalise (256 / 224 at ImageNet scale)."""
    return v2.Compose([v2.Resize(resize), v2.CenterCrop(size), *normalize(mean, std)])


def cifar_train(size: int = 32, padding: int = 4, flip: bool = True, mean: Stats = CIFAR10_MEAN,
                std: Stats = CIFAR10_STD) -> v2.Compose:
    """Zero-pad by ``padding``, random-crop ``size``, optional horizontal flip, normalise.

    The standard CIFAR augmentation (He et al. 2016) with pad 4 and flip; the digits use
    pad 2 and no flip (a mirrored digit is a different symbol or none).
    """
    steps: list[v2.Transform] = [v2.ToImage(), v2.RandomCrop(size, padding=padding)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + normalize(mean, std))


def cifar_eval(mean: Stats = CIFAR10_MEAN, std: Stats = CIFAR10_STD) -> v2.Compose:
    """Normalise only: small-image test sets are evaluated at their native size."""
    return v2.Compose(normalize(mean, std))
