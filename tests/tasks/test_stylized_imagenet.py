"""Stylized-ImageNet configs: train on SIN, validate on SIN val (val/…) and ImageNet val (val_in/…)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recal.config_paths import CONFIG_ROOT
from tests.cli_runner import last_value, read_metrics, run_cli, run_dirs
from tests.fixtures import write_image_folder

SIN_CONFIGS = sorted(p.name for p in (CONFIG_ROOT / "stylized_imagenet").glob("*.yaml"))
# Config runs swap ResNet-50 for a CIFAR ResNet-20 of the same family (the config's wiring is under test).
SMALL = {"r50": "cifar_resnet20", "se_r50": "se_cifar_resnet20", "ge_r50": "ge_cifar_resnet20",
         "srm_r50": "srm_cifar_resnet20"}
CLASSES = ["n01440764", "n01443537", "n01484850"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[Path, Path]:
    """A Stylized-ImageNet folder and an ImageNet folder with the same classes (different images)."""
    base = tmp_path_factory.mktemp("sin")
    sin = write_image_folder(base / "stylized_imagenet", CLASSES, per_class={"train": 4, "val": 2}, seed=1)
    imagenet = write_image_folder(base / "imagenet", CLASSES, per_class={"train": 1, "val": 3}, seed=2)
    return sin, imagenet


@pytest.mark.parametrize("config", SIN_CONFIGS)
def test_sin_configs_validate_on_both_sets_under_their_own_prefixes(tmp_path, roots, config):
    sin, imagenet = roots
    family = config.split("_sin")[0]
    args = ["fit", "--config", f"stylized_imagenet/{config}", "--data.init_args.root", str(sin),
            "--data.init_args.extra_val_root", str(imagenet), "--data.init_args.num_classes", "3",
            "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
            "--data.init_args.image_size", "32", "--data.init_args.resize_size", "36",
            "--model.init_args.backbone.name", SMALL[family], "--model.init_args.backbone.input_size", "32",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
    assert run_cli(args, tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    columns = set(read_metrics(run)[0])
    assert {"val/acc1", "val/acc5", "val/loss", "val_in/acc1", "val_in/acc5", "val_in/loss"} <= columns
    assert not any("dataloader_idx" in c for c in columns)
    for key in ("val/acc1", "val_in/acc1"):
        assert 0.0 <= last_value(run, key) <= 1.0
    assert (run / "checkpoints" / "best.ckpt").is_file()
