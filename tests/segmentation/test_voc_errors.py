"""Bad VOC trees and weights files: one error line naming the file and the problem, exit status 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_runner import run_cli
from tests.error_lines import the_error_line
from tests.segmentation.voc_fixture import save_palette_mask, write_voc

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = str(Path(__file__).parents[2] / "configs" / "segmentation" / "r50_deeplabv3_voc.yaml")
# a small network: the errors come from the data, before any step
SMALL = ["--model.init_args.backbone.name", "resnet18", "--model.init_args.weights", "null",
         "--data.num_workers", "0", "--data.batch_size", "2", "--trainer.accelerator", "cpu",
         "--trainer.max_steps", "1"]
VOC = Path("VOCdevkit") / "VOC2012"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # a failed run must leave nothing behind in the repository
    return tmp_path


def fit_error(root: Path, out: Path, capsys: pytest.CaptureFixture, *names: str, extra: tuple = ()) -> str:
    try:
        rc = run_cli(["fit", "--config", CONFIG, "--data.root", str(root), *SMALL, *extra], out / "runs")
    except SystemExit as exit:  # the parser's errors exit instead of returning
        rc = exit.code
    assert rc == 2
    return the_error_line(capsys.readouterr().err, *names)


def test_a_missing_voc_folder_names_the_path_and_the_layout(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    root = in_tmp / "no_voc"
    line = fit_error(root, in_tmp, capsys, str(root / VOC / "JPEGImages"), "does not exist")
    assert "SegmentationClass/<id>.png" in line and "ImageSets/Segmentation/<split>.txt" in line


def test_a_listed_image_that_is_absent_is_named(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_voc(in_tmp / "voc")
    missing = root / VOC / "JPEGImages" / "2007_000002.jpg"
    missing.unlink()
    fit_error(root, in_tmp, capsys, str(missing), "is listed in", "train.txt", "does not exist")


def test_a_mask_of_the_wrong_size_names_the_file_and_both_sizes(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_voc(in_tmp / "voc")
    mask = root / VOC / "SegmentationClass" / "2008_000001.png"
    save_palette_mask(np.zeros((30, 48), dtype=np.uint8), mask)
    fit_error(root, in_tmp, capsys, str(mask), "30×48", "40×48", "expected the image's size")


def test_a_colour_mask_is_refused_naming_the_file_and_its_mode(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_voc(in_tmp / "voc")
    mask = root / VOC / "SegmentationClass" / "2007_000000.png"
    Image.open(mask).convert("RGB").save(mask)
    fit_error(root, in_tmp, capsys, str(mask), "mode RGB", "class indices")


def test_a_missing_split_list_is_named(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_voc(in_tmp / "voc")
    fit_error(root, in_tmp, capsys, str(root / VOC / "ImageSets" / "Segmentation" / "train_aug.txt"),
              "does not exist", extra=("--data.train_split", "train_aug"))


def test_the_configs_missing_imagenet_weights_file_is_one_line(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_voc(in_tmp / "voc")
    rc = run_cli(["fit", "--config", CONFIG, "--data.root", str(root), "--trainer.accelerator", "cpu"], in_tmp / "runs")
    assert rc == 2
    the_error_line(capsys.readouterr().err, "runs/r50/version_0/checkpoints/best.ckpt", "does not exist")
    assert not (in_tmp / "runs" / "segmentation").exists() or not any((in_tmp / "runs" / "segmentation").rglob("*.csv"))


@pytest.mark.parametrize("option, value, expected", [
    ("--data.crop_size", "0", "data.crop_size=0: expected a positive number of pixels"),
    ("--model.init_args.head", "pspnet", "model.head: expected one of ['deeplabv3', 'fcn'], got pspnet"),
    ("--model.init_args.backbone.replace_stride_with_dilation", "[true]", "expected 3 booleans"),
])
def test_bad_options_are_one_line(option: str, value: str, expected: str, in_tmp: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    root = write_voc(in_tmp / "voc")
    fit_error(root, in_tmp, capsys, expected, extra=(option, value))
