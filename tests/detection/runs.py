"""Command lines shared by the detection tests: tiny sizes, one training step, one validation batch."""

from __future__ import annotations

from pathlib import Path

from tests.cli_runner import ROOT

CONFIGS = ROOT / "configs" / "detection"
COCO_CONFIGS = sorted(p.name for p in CONFIGS.glob("*_coco*.yaml"))

# one step then one validation batch (limit_train_batches ends the epoch), on CPU, at a tiny size,
# with a slim FPN and few sampled RoIs so that a ResNet-50 detector steps in seconds
FAST = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--model.init_args.min_size", "64", "--model.init_args.max_size", "96",
        "--model.init_args.fpn_channels", "32", "--model.init_args.box_batch_size_per_image", "16"]


def coco_fit(config: str, root: Path, *extra: str) -> list[str]:
    """``fit`` of a COCO config on the fixture at ``root``, from scratch unless ``extra`` sets weights."""
    return ["fit", "--config", str(CONFIGS / config), "--data.init_args.root", str(root),
            "--data.init_args.num_workers", "0", "--model.init_args.weights", "null", *FAST, *extra]


def quickstart_fit(*extra: str) -> list[str]:
    """``fit`` of the coins quickstart, shortened to one step and one validation."""
    return ["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--data.init_args.train_views", "2", *FAST, *extra]
