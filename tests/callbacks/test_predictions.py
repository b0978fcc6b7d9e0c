"""PredictionsCSV: one row per predicted image, named, with its top-k classes and softmax probabilities."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor

from recal.callbacks.predictions import PredictionsCSV, csv_header, merge_rank_files
from recal.data import ClassificationDataModule, DigitsDataModule, ImageFolderDataModule
from recal.models import BackboneConfig
from recal.tasks import ClassificationTask
from tests.fixtures import write_corrupt_image, write_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")


def predict(tmp_path: Path, task: L.LightningModule, dm: L.LightningDataModule,
            writer: PredictionsCSV | None = None) -> tuple[L.Trainer, Any]:
    """``trainer.predict`` on CPU with a CSV logger under ``tmp_path`` and a PredictionsCSV."""
    trainer = L.Trainer(logger=CSVLogger(tmp_path), callbacks=[writer or PredictionsCSV()], accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False)
    return trainer, trainer.predict(task, datamodule=dm)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def tiny_task(num_classes: int) -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(backbone=BackboneConfig(name="cifar_resnet20"), num_classes=num_classes)


def expected_probabilities(task: ClassificationTask, dm: ClassificationDataModule, indices: list[int]) -> Tensor:
    """The softmax of the model's logits for test items ``indices``, computed outside the trainer."""
    x = torch.stack([dm.test_set[i][0] for i in indices])
    with torch.no_grad():
        return task.eval()(x).softmax(dim=1)


def check_rows(rows: list[dict[str, str]], expected: Tensor, k: int, classes: list[str] | None) -> None:
    """Each row's k (class, prob) pairs: descending, the model's softmax to 1e-6, the top k classes."""
    for row, probs in zip(rows, expected):
        labels = [row[f"class_{j}"] for j in range(1, k + 1)]
        ids = [classes.index(c) if classes else int(c) for c in labels]
        written = [float(row[f"prob_{j}"]) for j in range(1, k + 1)]
        assert written == sorted(written, reverse=True)
        assert written == pytest.approx(probs[ids].tolist(), abs=1e-6)
        others = [p for c, p in enumerate(probs.tolist()) if c not in ids]
        assert not others or min(written) >= max(others) - 1e-6  # the top k, up to ties


def test_digits_rows_are_test_index_names_with_softmax_top5(tmp_path: Path) -> None:
    dm = DigitsDataModule(batch_size=32, val_fraction=0.05)  # 90 test images: 3 batches, the last partial
    task = tiny_task(10)
    trainer, returned = predict(tmp_path, task, dm)
    path = Path(trainer.log_dir) / "predictions.csv"
    header, rows = read_rows(path)
    assert header == csv_header(5) == ["index", "image", "class_1", "prob_1", "class_2", "prob_2", "class_3",
                                       "prob_3", "class_4", "prob_4", "class_5", "prob_5"]
    n = len(dm.test_set)
    assert n == 90 and len(rows) == n
    assert [r["index"] for r in rows] == [str(i) for i in range(n)]
    assert [r["image"] for r in rows] == [f"test[{i}]" for i in range(n)]
    check_rows(rows, expected_probabilities(task, dm, list(range(n))), 5, None)
    assert returned is None  # not also kept in memory


@pytest.fixture()
def image_root(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images", classes=["cat", "dog", "owl"], per_class=3, size=(32, 32))


def image_datamodule(root: Path, **options: Any) -> ImageFolderDataModule:
    return ImageFolderDataModule(root, num_classes=3, batch_size=4, num_workers=0, image_size=32, resize_size=32,
                                 **options)


def test_image_folder_rows_are_file_paths_with_class_names(tmp_path: Path, image_root: Path) -> None:
    dm = image_datamodule(image_root)
    task = tiny_task(3)
    trainer, returned = predict(tmp_path / "run", task, dm, PredictionsCSV(keep_in_memory=True))
    header, rows = read_rows(Path(trainer.log_dir) / "predictions.csv")
    assert header == csv_header(3)  # top-k capped at the 3 classes
    samples = dm.test_set.dataset.samples
    assert len(rows) == len(samples) == 9
    assert [r["image"] for r in rows] == [str(p) for p, _ in samples]
    assert all(Path(r["image"]).is_file() and Path(r["image"]).parent.parent == image_root / "val" for r in rows)
    assert {r[f"class_{j}"] for r in rows for j in (1, 2, 3)} == {"cat", "dog", "owl"}
    check_rows(rows, expected_probabilities(task, dm, list(range(9))), 3, ["cat", "dog", "owl"])
    assert torch.cat(returned).shape == (9, 3)  # keep_in_memory leaves trainer.predict's return alone


def test_skipped_corrupt_images_have_no_row_and_the_others_keep_their_names(tmp_path: Path,
                                                                             image_root: Path) -> None:
    bad = write_corrupt_image(image_root / "val" / "dog" / "dog_1a.JPEG")  # sorts between dog_1 and dog_2
    dm = image_datamodule(image_root, skip_corrupt=True)
    task = tiny_task(3)
    with pytest.warns(UserWarning, match="1 corrupt image"):
        trainer, _ = predict(tmp_path / "run", task, dm)
    _, rows = read_rows(Path(trainer.log_dir) / "predictions.csv")
    samples = dm.test_set.dataset.samples
    kept = [i for i, (p, _) in enumerate(samples) if Path(p) != bad]
    assert len(samples) == 10 and len(rows) == 9
    assert [r["index"] for r in rows] == [str(i) for i in kept]
    assert [r["image"] for r in rows] == [str(samples[i][0]) for i in kept]
    check_rows(rows, expected_probabilities(task, dm, kept), 3, ["cat", "dog", "owl"])


class ImageOut(L.LightningModule):
    """A module whose predictions are images, like the style-transfer task."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        return batch[0] * self.scale


def test_modules_that_are_not_classifiers_get_no_file(tmp_path: Path) -> None:
    dm = DigitsDataModule(batch_size=45, val_fraction=0.05)
    trainer, returned = predict(tmp_path, ImageOut(), dm)
    assert not list(tmp_path.rglob("*.csv"))
    assert torch.cat(returned).shape == (90, 3, 32, 32)  # return_predictions untouched


def test_rank_parts_merge_in_dataset_order(tmp_path: Path) -> None:
    header = csv_header(1)
    parts = [tmp_path / "predictions.rank0.csv", tmp_path / "predictions.rank1.csv"]
    for rank, part in enumerate(parts):
        with open(part, "w", newline="") as f:
            csv.writer(f).writerows([header, *[[i, f"test[{i}]", 0, "1.000000"] for i in range(rank, 5, 2)]])
    assert PredictionsCSV.rank_path(tmp_path / "predictions.csv", 1) == parts[1]
    assert merge_rank_files(parts, tmp_path / "predictions.csv") == 5
    _, rows = read_rows(tmp_path / "predictions.csv")
    assert [r["image"] for r in rows] == [f"test[{i}]" for i in range(5)]
    assert not any(p.exists() for p in parts)
