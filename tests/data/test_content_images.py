"""ContentImagesDataModule: the embedded demo, a folder of content images, one style image, predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recal.data.content_images import ContentImagesDataModule, demo_photo
from recal.errors import DatasetNotFoundError, InvalidOptionError


def write_photos(folder: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    """Random RGB images ``name`` → (H, W) under ``folder`` (names may contain sub-folders)."""
    rng = np.random.default_rng(seed)
    for name, (h, w) in sizes.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return folder


def first_batch(dm: ContentImagesDataModule, split: str = "train") -> torch.Tensor:
    return next(iter(getattr(dm, f"{split}_dataloader")()))[0]


def test_demo_is_the_default_and_batches_are_0_255_crops() -> None:
    dm = ContentImagesDataModule(image_size=32, batch_size=2)
    dm.setup("fit")
    x = first_batch(dm)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert x.max() > 1.5 and x.max() <= 255 and x.min() >= 0  # 0–255, not 0–1
    assert len(dm.train_set) == 4 and len(dm.val_set) == 4
    assert first_batch(dm, "val").shape == (2, 3, 32, 32)


def test_demo_style_image_and_style_size() -> None:
    full = ContentImagesDataModule().style_image()
    assert full.shape == (3, 512, 512)  # immunohistochemistry at its own size
    small = ContentImagesDataModule(demo_style="chelsea", style_size=60).style_image()
    assert small.shape == (3, 60, 90)  # chelsea is 300×451: the shorter side becomes 60
    assert np.array_equal(np.asarray(demo_photo("chelsea")).shape, (300, 451, 3))


def test_crops_are_seeded() -> None:
    def batch(seed: int) -> torch.Tensor:
        dm = ContentImagesDataModule(image_size=32, batch_size=4, seed=seed)
        dm.setup("fit")
        return first_batch(dm)

    assert torch.equal(batch(0), batch(0))
    assert not torch.equal(batch(0), batch(1))


def test_samples_per_epoch_cycles_with_distinct_crops() -> None:
    dm = ContentImagesDataModule(image_size=64, batch_size=4, samples_per_epoch=12, demo_content=["chelsea"])
    dm.setup("fit")
    assert len(dm.train_set) == 12 and len(dm.train_dataloader()) == 3
    crops = torch.cat([b[0] for b in dm.train_dataloader()])
    assert len({c.sum().item() for c in crops}) > 1


def test_folder_of_images_recursive_and_filtered(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "coco", {"a.jpg": (40, 50), "sub/b.png": (60, 36), "c.JPEG": (48, 48)})
    (root / "README.txt").write_text("not an image")
    write_photos(root, {".hidden.png": (10, 10)})
    dm = ContentImagesDataModule(content_dir=str(root), style_image=str(root / "a.jpg"), image_size=32,
                                 batch_size=3, val_images=2)
    dm.setup("fit")
    assert len(dm.train_set) == 3 and len(dm.val_set) == 2
    assert first_batch(dm).shape == (3, 3, 32, 32)
    assert dm.style_image().shape == (3, 40, 50)


def test_missing_style_image_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "styles" / "candy.jpg"
    dm = ContentImagesDataModule(style_image=str(missing))
    with pytest.raises(DatasetNotFoundError, match=str(missing)):
        dm.setup("fit")


def test_content_folder_without_images_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "empty")):
        ContentImagesDataModule(content_dir=str(tmp_path / "empty")).setup("fit")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        ContentImagesDataModule(content_dir=str(tmp_path / "nowhere")).setup("fit")


def test_invalid_options() -> None:
    with pytest.raises(InvalidOptionError, match="multiple of 4"):
        ContentImagesDataModule(image_size=30)
    with pytest.raises(InvalidOptionError, match="batch_size"):
        ContentImagesDataModule(batch_size=0)
    dm = ContentImagesDataModule(image_size=32, batch_size=8)  # 4 demo photos cannot fill a batch of 8
    dm.setup("fit")
    with pytest.raises(InvalidOptionError, match="samples_per_epoch"):
        dm.train_dataloader()


def test_predict_keeps_sizes_and_relative_names(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "in", {"odd.jpg": (250, 333), "deep/tiny.png": (37, 45)})
    dm = ContentImagesDataModule(predict_dir=str(root))
    dm.setup("predict")
    items = [(x.shape, list(names)) for x, names in dm.predict_dataloader()]
    assert items == [(torch.Size([1, 3, 37, 45]), ["deep/tiny.png"]), (torch.Size([1, 3, 250, 333]), ["odd.jpg"])]


def test_predict_defaults_to_the_demo_photos_at_full_size() -> None:
    dm = ContentImagesDataModule(val_images=2)
    dm.setup("predict")
    items = [(tuple(x.shape), names[0]) for x, names in dm.predict_dataloader()]
    assert items == [((1, 3, 512, 512), "astronaut.png"), ((1, 3, 300, 451), "chelsea.png")]


def test_predict_names_must_not_collide(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "in", {"a.jpg": (8, 8), "a.png": (8, 8)})
    with pytest.raises(InvalidOptionError, match="a"):
        ContentImagesDataModule(predict_dir=str(root)).setup("predict")
