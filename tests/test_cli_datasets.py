"""Every single-device ImageNet config and the CIFAR / SVHN / Places365 configs run on real-layout fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from recal.config_paths import CONFIG_ROOT
from tests.cli_runner import last_value, run_cli, run_dirs
from tests.fixtures import write_cifar10, write_cifar100, write_image_folder, write_places365, write_svhn
from tests.test_cli import SINGLE_DEVICE_IMAGENET

PLACES365_CONFIGS = sorted(f"places365/{p.name}" for p in (CONFIG_ROOT / "places365").glob("*.yaml"))
# Places365 runs swap ResNet-50/152 for the CIFAR ResNet-20 with the same gate: a run checks the config's
# wiring (data split, class count, task), not the big network, which would take minutes here.
SMALL_OF = {"r": "cifar_resnet20", "se_r": "se_cifar_resnet20", "srm_r": "srm_cifar_resnet20"}


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


@pytest.fixture(scope="module")
def places365_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # standard: 6 images, challenge: 9, so that with batch 4 an epoch (and its validation) ends by step 2
    return write_places365(tmp_path_factory.mktemp("places365"))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("config", PLACES365_CONFIGS)
def test_places365_configs_train_two_steps(config: str, places365_fixture: Path, tmp_path: Path) -> None:
    small = SMALL_OF[Path(config).stem.removesuffix("_places365").rstrip("0123456789")]
    rc = run_cli(["fit", "--config", config, "--data.root", str(places365_fixture), "--data.verify_md5", "false",
                  "--data.batch_size", "4", "--data.num_workers", "0", "--data.image_size", "32",
                  "--data.resize_size", "36", "--model.backbone.name", small, "--model.backbone.input_size", "32",
                  "--trainer.accelerator", "cpu", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
                  "--trainer.log_every_n_steps", "1"], tmp_path)
    assert rc == 0
    (run,) = run_dirs(tmp_path)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 2
    assert checkpoint["state_dict"]["model.fc.weight"].shape[0] == 365  # linked from the data
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["init_args"]["split"] == ("train-challenge" if "152" in config else "train-standard")
    assert 0.0 <= last_value(run, "val/acc5") <= 1.0


def test_a_missing_places365_root_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a failed run must leave nothing behind in the repository
    missing = tmp_path / "no_places365"
    rc = run_cli(["fit", "--config", "places365/srm_r152_places365.yaml", "--data.root", str(missing),
                  "--model.backbone.name", "srm_cifar_resnet20", "--trainer.fast_dev_run", "true"], tmp_path)
    assert rc == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert f"Places365 root {missing} does not exist" in line and "data_256_challenge/" in line
