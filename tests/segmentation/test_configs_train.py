"""Every segmentation config trains two steps and logs val/miou and val/pixel_acc; every recalibration family
runs on the segmentation quickstart, or is refused in one line where the backbone has no place for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recal.models.registry import CONVS, GATES, MODULES
from tests.cli_runner import last_value, run_cli
from tests.error_lines import the_error_line
from tests.segmentation.voc_fixture import write_voc

pytestmark = pytest.mark.usefixtures("one_thread")

VOC_CONFIGS = sorted(str(p.relative_to(Path("configs"))) for p in Path("configs/segmentation").glob("*_voc.yaml"))
QUICKSTART = "segmentation/quickstart.yaml"
TWO_STEPS = ["--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1",
             "--trainer.accelerator", "cpu", "--model.init_args.weights", "null"]
# the quickstart with 4 crops of 64 pixels, batch 2: an epoch (and its validation on the photo) in 2 steps
SMALL_QUICKSTART = ["--data.train_copies", "4", "--data.batch_size", "2", "--data.crop_size", "64"]


def segmentation_run(out: Path) -> Path:
    """The one run folder under ``out``: the configs name their runs ``segmentation/<config>``."""
    (run,) = out.glob("segmentation/*/version_*")
    return run


def assert_validated(out: Path) -> None:
    run = segmentation_run(out)
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2
    assert 0.0 <= last_value(run, "val/miou") <= 1.0
    assert 0.0 <= last_value(run, "val/pixel_acc") <= 1.0
    assert (run / "checkpoints" / "best.ckpt").is_file()  # chosen by val/miou


def test_the_voc_configs_are_the_two_deeplabv3_runs() -> None:
    assert VOC_CONFIGS == ["segmentation/r50_deeplabv3_voc.yaml", "segmentation/srm_r50_deeplabv3_voc.yaml"]


@pytest.mark.parametrize("config", VOC_CONFIGS)
def test_voc_configs_train_two_steps_and_log_miou(config: str, tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", train=4, val=2)
    rc = run_cli(["fit", "--config", config, "--data.root", str(root), "--data.batch_size", "2",
                  "--data.num_workers", "0", "--data.base_size", "40", "--data.crop_size", "32", *TWO_STEPS],
                 tmp_path / "runs")
    assert rc == 0
    assert_validated(tmp_path / "runs")


@pytest.mark.parametrize("family", GATES)
def test_the_quickstart_trains_with_every_gate_family(family: str, tmp_path: Path) -> None:
    rc = run_cli(["fit", "--config", QUICKSTART, "--model.init_args.backbone.name", "resnet18",
                  "--model.init_args.backbone.recalibration", family, *SMALL_QUICKSTART, *TWO_STEPS], tmp_path)
    assert rc == 0
    assert_validated(tmp_path)


@pytest.mark.parametrize("family", CONVS)
def test_conv_replacements_train_on_a_bottleneck_backbone(family: str, tmp_path: Path) -> None:
    rc = run_cli(["fit", "--config", QUICKSTART, "--model.init_args.backbone.name", "resnet50",
                  "--model.init_args.backbone.recalibration", family, *SMALL_QUICKSTART, *TWO_STEPS], tmp_path)
    assert rc == 0
    assert_validated(tmp_path)


@pytest.mark.parametrize("family", CONVS)
def test_conv_replacements_are_refused_on_the_quickstarts_resnet18_in_one_line(
        family: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc = run_cli(["fit", "--config", str(Path(__file__).parents[2] / "configs" / QUICKSTART),
                  "--model.init_args.backbone.name", "resnet18", "--model.init_args.backbone.recalibration", family,
                  *TWO_STEPS], tmp_path)
    assert rc == 2
    the_error_line(capsys.readouterr().err, f"'{family}'", "'resnet18'", "bottleneck")


def test_every_family_is_covered() -> None:
    assert set(GATES) | set(CONVS) == set(MODULES) == {"srm", "se", "ge", "cmpe_se", "eca", "cbam", "sk", "splat"}
