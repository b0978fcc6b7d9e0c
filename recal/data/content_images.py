"""Content images and one style image for feed-forward style transfer.

Johnson et al. (ECCV 2016) and the SRM paper's style-transfer experiment train on
MS-COCO train2014 (82,783 photos) resized and cropped to 256×256 with a single
style image; pytorch/examples fast_neural_style does the same with a centre crop.
:class:`ContentImagesDataModule` reads any folder of images that way. Without a
folder it uses the embedded demo: colour photos shipped inside scikit-image
(astronaut, chelsea, coffee, rocket as content; immunohistochemistry as style),
so a run never downloads anything.

Batches hold float32 images in 0–255 (pytorch/examples' convention): ``(images,
targets)`` for training and validation (targets are unused zeros) and
``(images, relative paths)`` for prediction, where every image keeps its own
size (batch size 1).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Optional, get_args

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from recal.data.images import IMAGE_EXTENSIONS, load_rgb
from recal.data.sampling import EpochSeededSampler, SeededTransformDataset
from recal.errors import DatasetNotFoundError, InvalidOptionError

__all__ = ["ContentImagesDataModule", "DemoPhoto", "demo_photo", "find_images"]

# scikit-image's shipped colour photos (no pooch download needed for these).
DemoPhoto = Literal["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
                    "hubble_deep_field", "retina", "colorwheel"]
DEMO_PHOTOS: tuple[str, ...] = get_args(DemoPhoto)


def demo_photo(name: str) -> Image.Image:
    """One of scikit-image's shipped colour photos as an RGB PIL image."""
    if name not in DEMO_PHOTOS:
        raise InvalidOptionError(f"unknown demo photo {name!r}; valid choices: {list(DEMO_PHOTOS)}")
    import skimage.data  # only the demo needs scikit-image

    return Image.fromarray(np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]))


def find_images(folder: str | os.PathLike, role: str = "content") -> list[Path]:
    """Image files under ``folder`` (recursive, sorted, hidden files skipped).

    Raises :class:`DatasetNotFoundError` naming the folder when it is missing or
    holds no file with an :data:`IMAGE_EXTENSIONS` suffix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{role} folder {folder} does not exist or is not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise DatasetNotFoundError(f"{role} folder {folder} holds no image files; expected files "
                                   f"ending in {', '.join(IMAGE_EXTENSIONS)} (case-insensitive)")
    return sorted(found)


class ImageList(Dataset):
    """``(PIL image, key)`` items from files (read on access) or in-memory demo photos."""

    def __init__(self, images: Sequence[Path | Image.Image], keys: Sequence[Any]) -> None:
        self.images = list(images)
        self.keys = list(keys)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, Any]:
        image = self.images[index]
        return (load_rgb(image) if isinstance(image, Path) else image), self.keys[index]


def to_0_255() -> list[v2.Transform]:
    """PIL → float32 CHW tensor in 0–255 (the transformer's and the loss network's input range)."""
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=False), v2.ToPureTensor()]


class ContentImagesDataModule(L.LightningDataModule):
    """Content images (a folder, or the embedded demo) and one style image.

    Args:
        content_dir: folder of content images, searched recursively (MS-COCO
            ``train2014`` in the paper); None uses the demo photos ``demo_content``.
        style_image: the style image file; None uses the demo photo ``demo_style``.
        image_size: training crops are ``image_size``² after resizing the shorter
            side to ``image_size`` (256, Johnson et al.).
        crop: ``random`` (default) or ``center`` (pytorch/examples).
        style_size: resize the style image's shorter side to this; None keeps its size
            (pytorch/examples' default; it resizes to a square, we keep the aspect).
        batch_size: per device (4 in pytorch/examples).
        samples_per_epoch: crops per training epoch, cycling through the images;
            None = each image once (set it for the 4-photo demo).
        val_dir: validation images; None = the first ``val_images`` content images.
        val_images: how many validation images (also the size of the logged grid).
        predict_dir: images to stylise with ``predict``, any size; None = the
            validation images at full size.
        demo_content / demo_style: scikit-image photos used when the paths are None.
        num_workers: DataLoader workers.
        seed: seeds the sample order and the crops (a pure function of seed, epoch, index).
    """

    def __init__(
        self,
        content_dir: Optional[str] = None,
        style_image: Optional[str] = None,
        image_size: int = 256,
        crop: Literal["random", "center"] = "random",
        style_size: Optional[int] = None,
        batch_size: int = 4,
        samples_per_epoch: Optional[int] = None,
        val_dir: Optional[str] = None,
        val_images: int = 4,
        predict_dir: Optional[str] = None,
        demo_content: Sequence[DemoPhoto] = ("astronaut", "chelsea", "coffee", "rocket"),
        demo_style: DemoPhoto = "immunohistochemistry",
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("image_size", image_size), ("batch_size", batch_size), ("val_images", val_images),
                            ("style_size", style_size or 1), ("samples_per_epoch", samples_per_epoch or 1)):
            if value < 1:
                raise InvalidOptionError(f"data.{name}={value}; expected a positive integer")
        if image_size % 4:
            raise InvalidOptionError(f"data.image_size={image_size}; the transformer downsamples ×4, "
                                     f"so training crops must be a multiple of 4")
        self.save_hyperparameters()
        self.content_dir, self.style_path = content_dir, style_image
        self.image_size, self.crop, self.style_size = image_size, crop, style_size
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.samples_per_epoch, self.val_dir, self.val_images = samples_per_epoch, val_dir, val_images
        self.predict_dir = predict_dir
        self.demo_content, self.demo_style = list(demo_content), demo_style
        self.train_set: Optional[SeededTransformDataset] = None
        self.val_set: Optional[SeededTransformDataset] = None
        self.predict_set: Optional[SeededTransformDataset] = None

    # ------------------------------------------------------------------ sources
    def content_list(self) -> ImageList:
        """The training content images, unresized."""
        if self.content_dir is None:
            return ImageList([demo_photo(n) for n in self.demo_content], [0] * len(self.demo_content))
        files = find_images(self.content_dir, "content")
        return ImageList(files, [0] * len(files))

    def eval_list(self, named: bool = False) -> ImageList:
        """The validation images: ``val_dir``, else the first ``val_images`` content images.

        Keys are 0, or with ``named`` each image's path relative to its folder
        (``<photo>.png`` for the demo), which names ``predict``'s outputs.
        """
        if self.val_dir is None and self.content_dir is None:
            chosen = self.demo_content[: self.val_images]
            return ImageList([demo_photo(n) for n in chosen], [f"{n}.png" if named else 0 for n in chosen])
        folder = self.val_dir if self.val_dir is not None else self.content_dir
        files = find_images(folder, "validation" if self.val_dir is not None else "content")[: self.val_images]
        return ImageList(files, [str(f.relative_to(folder)) if named else 0 for f in files])

    def predict_list(self) -> ImageList:
        """The images ``predict`` stylises, keyed by their path relative to ``predict_dir``."""
        if self.predict_dir is None:
            return self.eval_list(named=True)
        files = find_images(self.predict_dir, "predict")
        names = [str(f.relative_to(self.predict_dir)) for f in files]
        # Outputs are written as <name>.png: two inputs must not differ only in their extension.
        stems = Counter(str(Path(n).with_suffix("")) for n in names)
        clash = sorted(stem for stem, count in stems.items() if count > 1)
        if clash:
            raise InvalidOptionError(f"predict folder {self.predict_dir} has several images named {clash[0]} "
                                     f"with different extensions; their outputs would overwrite each other")
        return ImageList(files, names)

    def style_image(self) -> Tensor:
        """The style image as a float32 (3, H, W) tensor in 0–255, resized to ``style_size``."""
        if self.style_path is None:
            image = demo_photo(self.demo_style)
        else:
            path = Path(self.style_path)
            if not path.is_file():
                raise DatasetNotFoundError(f"style image {path} does not exist; set data.init_args.style_image "
                                           f"to an image file")
            image = load_rgb(path)
        steps = [v2.Resize(self.style_size, antialias=True)] if self.style_size else []
        return v2.Compose([*steps, *to_0_255()])(image)

    # --------------------------------------------------------------- transforms
    def train_transform(self) -> v2.Compose:
        crop = v2.RandomCrop(self.image_size) if self.crop == "random" else v2.CenterCrop(self.image_size)
        return v2.Compose([v2.Resize(self.image_size, antialias=True), crop, *to_0_255()])

    def eval_transform(self) -> v2.Compose:
        return v2.Compose([v2.Resize(self.image_size, antialias=True), v2.CenterCrop(self.image_size), *to_0_255()])

    # ------------------------------------------------------------------ Lightning
    def setup(self, stage: Optional[str] = None) -> None:
        """Find the images ``stage`` needs; the style image is checked here too, before training."""
        if stage in ("fit", "validate", None):
            self.style_image()  # fail before the first step when the style image is missing
            if self.train_set is None and stage in ("fit", None):
                content = self.content_list()
                content = Cycled(content, self.samples_per_epoch or len(content))
                self.train_set = SeededTransformDataset(content, self.train_transform(), self.seed)
            if self.val_set is None:
                self.val_set = SeededTransformDataset(self.eval_list(), self.eval_transform(), self.seed)
        if stage in ("predict", None) and self.predict_set is None:
            self.predict_set = SeededTransformDataset(self.predict_list(), v2.Compose(to_0_255()), self.seed)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup('fit') first"
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        length = len(self.train_set)
        if length < self.batch_size * world:
            raise InvalidOptionError(
                f"{length} training images per epoch cannot fill one batch of {self.batch_size} per device on "
                f"{world} device(s); lower data.init_args.batch_size or set data.init_args.samples_per_epoch")
        sampler = EpochSeededSampler(length, num_replicas=world, rank=rank, seed=self.seed, drop_last=True)
        # drop_last: BatchNorm (and SRM's BN over gate scores) needs more than one sample.
        return DataLoader(self.train_set, batch_size=self.batch_size,
                          sampler=sampler, num_workers=self.num_workers, drop_last=True,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup('fit') or setup('validate') first"
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        assert self.predict_set is not None, "call setup('predict') first"
        # batch size 1: every image keeps its own size.
        return DataLoader(self.predict_set, batch_size=1, num_workers=self.num_workers)


class Cycled(Dataset):
    """``length`` items cycling through ``dataset`` (``samples_per_epoch`` beyond the image count).

    Indices stay distinct, so under :class:`SeededTransformDataset` each visit of an
    image gets its own random crop.
    """

    def __init__(self, dataset: Dataset, length: int) -> None:
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]
