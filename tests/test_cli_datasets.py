"""Every single-device ImageNet config and the CIFAR / SVHN configs run on real-layout fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cli_runner import last_value, run_cli, run_dirs
from tests.fixtures import write_cifar10, write_cifar100, write_image_folder, write_svhn
from tests.test_cli import SINGLE_DEVICE_IMAGENET


@pytest.fixture(scope="module")
def imagenet_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=3, per_class=2, size=(40, 48))


@pytest.mark.parametrize("config", SINGLE_DEVICE_IMAGENET)
def test_imagenet_config_fast_dev_run(config: str, imagenet_fixture: Path, tmp_path: Path, monkeypatch) -> None:
    """The real config at 224 px (GE's global kernels need it), one step of fit and one of val;
    a smoke run writes no checkpoint anywhere (Lightning 2.6 would drop last.ckpt in the cwd)."""
    monkeypatch.chdir(tmp_path)
    rc = run_cli(["fit", "--config", config, "--data.root", str(imagenet_fixture), "--data.num_classes", "3",
                  "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
                  "--trainer.fast_dev_run", "true"], tmp_path)
    assert rc == 0
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("config, write, flag", [
    ("cifar/srm_resnet56_c10.yaml", write_cifar10, "--data.verify_md5"),
    ("cifar/se_resnet110_c100.yaml", write_cifar100, "--data.verify_md5"),
    ("svhn/srm_resnet56.yaml", write_svhn, "--data.verify_md5"),
])
def test_small_image_configs_train_two_steps(config: str, write, flag: str, tmp_path: Path) -> None:
    root = write(tmp_path / "data")
    rc = run_cli(["fit", "--config", config, "--data.root", str(root), flag, "false", "--data.batch_size", "8",
                  "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.max_steps", "2",
                  "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1"], tmp_path / "runs")
    assert rc == 0
    (run,) = run_dirs(tmp_path / "runs")
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 2
    assert last_value(run, "train/loss_step") > 0
