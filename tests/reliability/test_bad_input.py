"""Bad input through the real entry point: one short line naming the bad value, exit 2.

Each case runs ``cli.py`` in-process; parse errors exit through ``SystemExit(2)``, errors
found later come back as status 2 from ``main``. Neither prints a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cli_runner import last_value, run_cli, run_dirs
from tests.error_lines import the_error_line
from tests.fixtures import write_corrupt_image, write_image_folder

FIT = ["fit", "--config", "srm_r50.yaml", "--model.backbone.name", "srm_resnet18", "--data.image_size", "32",
       "--data.resize_size", "36", "--data.batch_size", "2", "--data.num_workers", "0", "--data.num_classes", "3",
       "--trainer.accelerator", "cpu", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
       "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    return the_error_line(capsys.readouterr().err)


def _fails(args: list[str], out: Path, capsys: pytest.CaptureFixture) -> str:
    try:
        status = run_cli(args, out)
    except SystemExit as exit_:  # the parser's own exit
        status = exit_.code
    assert status == 2
    return _error_line(capsys)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images", classes=3, per_class=4, size=(36, 36))


def test_a_corrupt_training_image_stops_naming_the_file(folder: Path, tmp_path: Path, capsys) -> None:
    bad = write_corrupt_image(folder / "train" / "n01" / "broken.JPEG")
    line = _fails([*FIT, "--data.root", str(folder)], tmp_path / "runs", capsys)
    assert str(bad) in line


def test_skip_corrupt_skips_counts_and_reports(folder: Path, tmp_path: Path, capsys) -> None:
    write_corrupt_image(folder / "train" / "n01" / "broken.JPEG")
    (folder / "train" / "n00" / "notes.txt").write_text("not an image")  # ignored
    assert run_cli([*FIT, "--data.root", str(folder), "--data.skip_corrupt", "true",
                    "--trainer.max_steps", "6"], tmp_path / "runs") == 0
    (run,) = run_dirs(tmp_path / "runs")
    assert last_value(run, "data/skipped_train") == 1.0


def test_a_class_missing_from_val_is_named(folder: Path, tmp_path: Path, capsys) -> None:
    for image in (folder / "val" / "n02").iterdir():
        image.unlink()
    (folder / "val" / "n02").rmdir()
    line = _fails([*FIT, "--data.root", str(folder)], tmp_path / "runs", capsys)
    assert "n02" in line


def test_an_empty_class_folder_is_named(folder: Path, tmp_path: Path, capsys) -> None:
    for image in (folder / "train" / "n00").iterdir():
        image.unlink()
    line = _fails([*FIT, "--data.root", str(folder)], tmp_path / "runs", capsys)
    assert "n00" in line


def test_a_checkpoint_of_another_architecture_or_class_count_is_named(folder: Path, tmp_path: Path, capsys) -> None:
    assert run_cli([*FIT, "--data.root", str(folder)], tmp_path / "first") == 0
    (run,) = run_dirs(tmp_path / "first")
    checkpoint = run / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    line = _fails([*FIT, "--data.root", str(folder), "--model.backbone.name", "se_resnet18",
                   "--ckpt_path", str(checkpoint)], tmp_path / "second", capsys)
    assert str(checkpoint) in line and "se_resnet18" in line and "srm_resnet18" in line
    more_classes = write_image_folder(tmp_path / "five", classes=5, per_class=2, size=(36, 36))
    line = _fails([*FIT, "--data.root", str(more_classes), "--data.num_classes", "5", "--ckpt_path", str(checkpoint)],
                  tmp_path / "third", capsys)
    # a resume may not change the data: the differing options are named
    assert str(checkpoint) in line and "num_classes: 3 → 5" in line


@pytest.mark.parametrize("yaml, named", [
    ("trainer:\n  max_epochs: many\n", "max_epochs"),
    ("model:\n  init_args:\n    backbone:\n      name: srm_resnet18\n      poolin: [avg]\n", "poolin"),
    ("data:\n  init_args:\n    batch_sise: 4\n", "batch_sise"),
    ("model:\n  init_args:\n    label_smoothing: high\n", "label_smoothing"),
])
def test_wrong_types_and_unknown_keys_in_yaml_are_named(yaml: str, named: str, tmp_path: Path, capsys) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml)
    line = _fails(["fit", "--config", "quickstart.yaml", "--config", str(extra)], tmp_path, capsys)
    assert named in line


def test_an_unknown_recalibration_lists_the_valid_ones(tmp_path: Path, capsys) -> None:
    line = _fails(["fit", "--config", "quickstart.yaml", "--model.backbone.recalibration", "cbam2"], tmp_path, capsys)
    assert "cbam2" in line and "'srm'" in line and "'se'" in line


def test_an_option_the_module_does_not_take_names_both(tmp_path: Path, capsys) -> None:
    line = _fails(["fit", "--config", "quickstart.yaml", "--model.backbone.name", "se_cifar_resnet20",
                   "--model.backbone.pooling", "[avg, std]", "--trainer.max_steps", "1"], tmp_path, capsys)
    assert "'se'" in line and "'pooling'" in line


def test_sixteen_bit_png_is_not_clipped(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from recal.data.images import load_rgb

    gradient = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "depth.png"
    Image.fromarray(gradient).save(path)
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert (rgb == 255).mean() < 0.01 and rgb.min() == 0 and abs(float(rgb.mean()) - 127.5) < 2
    assert torch.tensor(rgb[..., 0]).float().diff(dim=1).ge(0).float().mean() > 0.9
