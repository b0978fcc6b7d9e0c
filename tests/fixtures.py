"""Writers of tiny datasets in the real on-disk formats, for tests of data, tasks and the CLI.

Each writer produces what the real dataset looks like on disk (torchvision's CIFAR pickles and
SVHN ``.mat`` files, ImageNet-style class folders, Places365's file lists), small and deterministic. Images carry a
class-dependent colour plus noise, so a model can learn them in a few steps. CIFAR and SVHN
files and Places365's lists are not the official releases, so their MD5 checks fail: in-process tests wrap loading in
:func:`skip_md5`; a test that runs ``python cli.py`` in a subprocess passes
``--data.verify_md5 false`` instead.
"""

from __future__ import annotations

import colorsys
import contextlib
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image

__all__ = [
    "class_colour",
    "skip_md5",
    "write_cifar10",
    "write_cifar100",
    "write_corrupt_image",
    "write_dtd",
    "write_image_folder",
    "write_office_home",
    "write_places365",
    "write_svhn",
    "write_truncated_jpeg",
]


def class_colour(label: int, num_classes: int) -> np.ndarray:
    """An RGB uint8 colour per class: hues spread evenly around the colour wheel."""
    r, g, b = colorsys.hsv_to_rgb(label / max(num_classes, 1), 0.8, 0.9)
    return np.array([r * 255, g * 255, b * 255], dtype=np.float64).round().astype(np.uint8)


def _images(labels: Sequence[int], num_classes: int, size: tuple[int, int], seed: int | list[int]) -> np.ndarray:
    """uint8 (N, H, W, 3): each image its class colour plus uniform noise of +-40."""
    rng = np.random.default_rng(seed)
    base = np.array([class_colour(int(y), num_classes) for y in labels], dtype=np.int16).reshape(-1, 3)
    noise = rng.integers(-40, 41, size=(len(labels), *size, 3), dtype=np.int16)
    return np.clip(base[:, None, None, :] + noise, 0, 255).astype(np.uint8)


def write_image_folder(
    root: str | os.PathLike,
    classes: int | Sequence[str] = 3,
    per_class: int | dict[str, int] = 4,
    size: tuple[int, int] = (40, 48),
    splits: Sequence[str] = ("train", "val"),
    ext: str = "JPEG",
    seed: int = 0,
) -> Path:
    """Write ``root/<split>/<class>/<class>_<i>.<ext>`` images (ImageNet's layout); return ``root``.

    ``classes`` is a count (folders ``n00``, ``n01`` ...) or a list of names; ``per_class`` an
    image count per class in every split, or a dict per split. ``size`` is (H, W). ``ext`` picks
    the format through Pillow (``JPEG``/``jpg``, ``png``, ``bmp``).
    """
    root = Path(root)
    names = [f"n{i:02d}" for i in range(classes)] if isinstance(classes, int) else list(classes)
    for s, split in enumerate(splits):
        count = per_class[split] if isinstance(per_class, dict) else per_class
        for c, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = _images([c] * count, len(names), size, seed=[seed, s, c])
            for i, array in enumerate(pixels):
                Image.fromarray(array).save(folder / f"{name}_{i}.{ext}")
    return root


def write_truncated_jpeg(path: str | os.PathLike, size: tuple[int, int] = (40, 48)) -> Path:
    """Write a JPEG cut off after half its bytes (a partial download); Pillow cannot decode it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_images([0], 1, size, seed=1)[0]).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_corrupt_image(path: str | os.PathLike) -> Path:
    """Write a file with an image extension whose bytes are not an image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image" * 10)
    return path


def _cifar_arrays(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, list[int]]:
    labels = [i % num_classes for i in range(n)]
    hwc = _images(labels, num_classes, (32, 32), seed)
    # CIFAR rows are the R plane, then G, then B, each row-major 32x32.
    return hwc.transpose(0, 3, 1, 2).reshape(n, 3072), labels


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root: str | os.PathLike, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Write ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``; return ``root``.

    Labels cycle through the 10 classes (sample i has label i % 10); the train samples are
    spread over the five batch files in order.
    """
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    data, labels = _cifar_arrays(n_train, 10, seed)
    for b, idx in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _pickle(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5",
                                              "labels": [labels[i] for i in idx], "data": data[idx],
                                              "filenames": [f"train_{i}.png" for i in idx]})
    data, labels = _cifar_arrays(n_test, 10, seed + 1)
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels, "data": data,
                                    "filenames": [f"test_{i}.png" for i in range(n_test)]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": max(n_train // 5, 1),
                                      "num_vis": 3072})
    return root


def write_cifar100(root: str | os.PathLike, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """Write ``root/cifar-100-python/{train,test,meta}``; return ``root``. Fine label i % 100."""
    root = Path(root)
    folder = root / "cifar-100-python"
    for name, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        data, labels = _cifar_arrays(n, 100, s)
        _pickle(folder / name, {"filenames": [f"{name}_{i}.png" for i in range(n)], "batch_label": name,
                                "fine_labels": labels, "coarse_labels": [y // 5 for y in labels], "data": data})
    _pickle(folder / "meta", {"fine_label_names": [f"fine_{i:02d}" for i in range(100)],
                              "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]})
    return root


def write_svhn(root: str | os.PathLike, n_train: int = 50, n_test: int = 20, n_extra: int = 0,
               seed: int = 0) -> Path:
    """Write ``root/{train,test[,extra]}_32x32.mat`` (X uint8 (32,32,3,N), y (N,1) with 10 for 0).

    Digit of sample i is i % 10, stored as 10 when it is 0, as in the real files; returns ``root``.
    """
    from scipy.io import savemat

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for s, (split, n) in enumerate((("train", n_train), ("test", n_test), ("extra", n_extra))):
        if split == "extra" and n == 0:
            continue
        digits = [i % 10 for i in range(n)]
        hwc = _images(digits, 10, (32, 32), seed + s)
        y = np.array([d if d else 10 for d in digits], dtype=np.uint8).reshape(n, 1)
        savemat(root / f"{split}_32x32.mat", {"X": hwc.transpose(1, 2, 3, 0), "y": y})
    return root


@contextlib.contextmanager
def skip_md5() -> Iterator[None]:
    """Within this block torchvision's CIFAR and SVHN accept any existing file as intact."""
    def exists(fpath: str, md5: str | None = None) -> bool:
        return os.path.isfile(fpath)

    with mock.patch("torchvision.datasets.cifar.check_integrity", exists), \
            mock.patch("torchvision.datasets.svhn.check_integrity", exists):
        yield


def write_dtd(root: str | os.PathLike, classes: int | Sequence[str] = 3, per_class: int = 6,
              size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    """Write DTD in torchvision's layout under ``root/dtd/dtd``; return ``root``.

    ``images/<class>/<class>_<i:04d>.jpg`` and ``labels/{train,val,test}{1..10}.txt`` (lines
    ``class/file.jpg``). Like the real files, each partition splits every class into equal
    thirds (``per_class`` must be a multiple of 3); partition p rotates the class's images by
    p so that partitions differ. Classes default to DTD-like names (``banded``, ``blotchy`` …).
    """
    if per_class % 3:
        raise ValueError(f"per_class={per_class}: DTD's partitions split each class in thirds")
    root = Path(root)
    textures = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked"]
    names = (textures + [f"texture{i}" for i in range(len(textures), classes)])[:classes] \
        if isinstance(classes, int) else list(classes)
    folder = root / "dtd" / "dtd"
    files: dict[str, list[str]] = {}
    for c, name in enumerate(names):
        (folder / "images" / name).mkdir(parents=True, exist_ok=True)
        pixels = _images([c] * per_class, len(names), size, seed=[seed, c])
        files[name] = [f"{name}/{name}_{i:04d}.jpg" for i in range(per_class)]
        for rel, array in zip(files[name], pixels):
            Image.fromarray(array).save(folder / "images" / rel)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    third = per_class // 3
    for p in range(1, 11):
        lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for name in names:
            rotated = files[name][p % per_class:] + files[name][:p % per_class]
            for k, split in enumerate(("train", "val", "test")):
                lines[split] += rotated[k * third:(k + 1) * third]
        for split, entries in lines.items():
            (folder / "labels" / f"{split}{p}.txt").write_text("\n".join(entries) + "\n")
    return root


def write_office_home(root: str | os.PathLike, classes: int | Sequence[str] = 3, per_domain: int = 5,
                      real_world_name: str = "Real World", size: tuple[int, int] = (40, 48),
                      seed: int = 0) -> Path:
    """Write Office-Home's layout ``root/<Domain>/<class>/<i:05d>.jpg``; return ``root``.

    Domains ``Art``, ``Clipart``, ``Product`` and ``real_world_name`` (the official
    ``Real World``, with a space, or ``Real_World``), each with ``per_domain`` images per
    class. Images carry the class colour, shifted per domain, plus noise.
    """
    root = Path(root)
    names = ["Alarm_Clock", "Backpack", "Batteries", "Bed", "Bike", "Bottle", "Bucket", "Calculator"]
    names = (names + [f"Class_{i}" for i in range(len(names), classes)])[:classes] \
        if isinstance(classes, int) else list(classes)
    for d, domain in enumerate(("Art", "Clipart", "Product", real_world_name)):
        for c, name in enumerate(names):
            folder = root / domain / name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = _images([c] * per_domain, len(names), size, seed=[seed, d, c]).astype(np.int16)
            pixels = np.clip(pixels + (d - 1.5) * 20, 0, 255).astype(np.uint8)
            for i, array in enumerate(pixels):
                Image.fromarray(array).save(folder / f"{i:05d}.jpg")
    return root


PLACES365_SCENES = ["/a/airfield", "/a/airplane_cabin", "/a/airport_terminal", "/a/alcove", "/a/alley"]


def write_places365(root: str | os.PathLike, classes: int = 3, categories: int = 365,
                    per_class: dict[str, int] | None = None, small_size: tuple[int, int] = (32, 32),
                    large_size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """Write Places365 in torchvision's layout under ``root``; return ``root``.

    ``categories_places365.txt`` lists ``categories`` scenes (``/a/airfield 0`` …, sorted like the
    real file); only the first ``classes`` have images, so a fixture can keep the real 365
    classes. File lists ``places365_train_{standard,challenge}.txt`` (``/a/airfield/00000001.jpg
    0``) and ``places365_val.txt`` (``Places365_val_00000001.jpg 0``, classes interleaved) with
    ``per_class`` images per class (default standard 2, challenge 3, val 2). Every image is
    written twice: at ``small_size`` (H, W) under ``data_256_{standard,challenge}/`` and
    ``val_256/``, at ``large_size`` under ``data_large_*`` and ``val_large/``, so that a test
    can tell which variant was read.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    counts = {"train-standard": 2, "train-challenge": 3, "val": 2, **(per_class or {})}
    scenes = (PLACES365_SCENES + [f"/s/scene_{i:03d}" for i in range(len(PLACES365_SCENES), categories)])[:categories]
    (root / "categories_places365.txt").write_text("".join(f"{name} {i}\n" for i, name in enumerate(scenes)))
    lists = {
        "train-standard": [(f"{scenes[c]}/{i:08d}.jpg", c) for c in range(classes)
                           for i in range(1, counts["train-standard"] + 1)],
        "train-challenge": [(f"{scenes[c]}/{i:08d}.jpg", c) for c in range(classes)
                            for i in range(1, counts["train-challenge"] + 1)],
        "val": [(f"Places365_val_{n + 1:08d}.jpg", n % classes) for n in range(classes * counts["val"])],
    }
    for s, (split, entries) in enumerate(lists.items()):
        (root / f"places365_{split.replace('-', '_')}.txt").write_text(
            "".join(f"{name} {label}\n" for name, label in entries))
        variant = split.removeprefix("train-")
        for size_name, size in (("256", small_size), ("large", large_size)):
            folder = root / (f"val_{size_name}" if split == "val" else f"data_{size_name}_{variant}")
            pixels = _images([label for _, label in entries], classes, size, seed=[seed, s])
            for (name, _), array in zip(entries, pixels):
                path = folder / name.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)
    return root
