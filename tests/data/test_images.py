"""load_rgb's conversions and RobustImageFolder's errors, filtering and corrupt-file skipping."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from recal.data.images import RobustImageFolder, collate_skipping_none, load_rgb
from recal.data.sampling import SeededTransformDataset
from recal.data.transforms import cifar_eval
from recal.errors import CorruptImageError, DatasetNotFoundError
from tests.fixtures import write_corrupt_image, write_image_folder, write_truncated_jpeg


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    gradient = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    path = tmp_path / "gradient16.png"
    Image.fromarray(gradient).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "I;16"
        # The pitfall being guarded against: Pillow's own conversion clips almost all to white.
        assert (np.asarray(raw.convert("RGB")) == 255).mean() > 0.99
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    expected = np.rint(gradient / 257.0)
    assert np.abs(rgb[..., 0] - expected).max() == 0
    assert (rgb[..., 0] == rgb[..., 2]).all()
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and abs(rgb.mean() - 127.5) < 1


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    r, g, b = np.asarray(rgb).reshape(-1, 3).mean(0)
    assert r > 240 and g < 15 and b < 15


def test_rgba_is_composited_on_white(tmp_path):
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[:, :4] = (0, 0, 255, 255)  # opaque blue
    pixels[:, 4:] = (0, 0, 0, 0)      # fully transparent black
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels, mode="RGBA").save(path)
    rgb = np.asarray(load_rgb(path))
    assert (rgb[:, :4] == (0, 0, 255)).all()
    assert (rgb[:, 4:] == 255).all()


def test_grayscale_and_palette_become_rgb(tmp_path):
    Image.fromarray(np.full((6, 6), 77, np.uint8), mode="L").save(tmp_path / "gray.png")
    gray = np.asarray(load_rgb(tmp_path / "gray.png"))
    assert gray.shape == (6, 6, 3) and (gray == 77).all()
    palette = Image.new("P", (6, 6), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "palette.png", transparency=0)
    assert (np.asarray(load_rgb(tmp_path / "palette.png")) == (10, 200, 30)).all()


def test_corrupt_files_raise_naming_the_file(tmp_path):
    truncated = write_truncated_jpeg(tmp_path / "half.JPEG")
    garbage = write_corrupt_image(tmp_path / "garbage.png")
    for path in (truncated, garbage):
        with pytest.raises(CorruptImageError, match=str(path)):
            load_rgb(path)
    with pytest.raises(DatasetNotFoundError, match="missing.jpg"):
        load_rgb(tmp_path / "missing.jpg")


def test_folder_ignores_non_images_and_hidden_entries(tmp_path):
    root = write_image_folder(tmp_path / "ds", classes=["a", "b"], per_class=3, size=(8, 8), splits=["."])
    (root / "a" / "README.txt").write_text("notes")
    (root / "a" / ".DS_Store").write_bytes(b"\0\1")
    write_corrupt_image(root / "b" / "._b_0.JPEG")  # a macOS resource fork: hidden, not an image
    (root / ".ipynb_checkpoints").mkdir()
    (root / "LICENSE").write_text("not a class")
    ds = RobustImageFolder(root)
    assert ds.classes == ["a", "b"]
    assert len(ds) == 6 and [t for _, t in ds.samples] == [0, 0, 0, 1, 1, 1]
    image, target = ds[4]
    assert image.mode == "RGB" and image.size == (8, 8) and target == 1


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=f"{tmp_path / 'nope'} is not a folder"):
        RobustImageFolder(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "x.JPEG")
    with pytest.raises(DatasetNotFoundError, match=f"{tmp_path / 'flat'} has no class folders"):
        RobustImageFolder(tmp_path / "flat")
    root = write_image_folder(tmp_path / "ds", classes=["a", "b"], per_class=1, size=(8, 8), splits=["."])
    for f in (root / "b").iterdir():
        f.unlink()
    (root / "b" / "notes.txt").write_text("only this")
    with pytest.raises(DatasetNotFoundError, match=f"class folder {root / 'b'} holds no image files"):
        RobustImageFolder(root)


def corrupt_folder(tmp_path):
    root = write_image_folder(tmp_path / "ds", classes=["a", "b"], per_class=4, size=(8, 8), splits=["."])
    write_truncated_jpeg(root / "a" / "a_1.JPEG", size=(8, 8))
    write_corrupt_image(root / "b" / "b_2.JPEG")
    return root


def test_corrupt_image_stops_loading_by_default(tmp_path):
    ds = RobustImageFolder(corrupt_folder(tmp_path))
    with pytest.raises(CorruptImageError, match="a_1.JPEG"):
        ds[1]


# Workers inherit the warning filters; under -W error the skip warning would become an error there.
@pytest.mark.filterwarnings("ignore:skipping corrupt image")
@pytest.mark.parametrize("workers", [0, 2])
def test_skip_corrupt_drops_and_counts(tmp_path, workers):
    folder = RobustImageFolder(corrupt_folder(tmp_path), skip_corrupt=True, counter_slots=workers + 1)
    loader = DataLoader(SeededTransformDataset(folder, cifar_eval()), batch_size=3, num_workers=workers,
                        collate_fn=collate_skipping_none)
    with pytest.warns(UserWarning, match="skipping corrupt image") if workers == 0 else nullcontext():
        sizes = [len(y) for _, y in loader]
    assert sizes == [2, 3, 1]  # a_0 [a_1] a_2 | a_3 b_0 b_1 | [b_2] b_3
    assert folder.skipped.total() == 2
    folder.skipped.reset()
    assert folder.skipped.total() == 0


def test_all_corrupt_batch_is_an_error():
    with pytest.raises(CorruptImageError, match="all 2 images"):
        collate_skipping_none([None, None])

