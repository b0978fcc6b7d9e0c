"""Every detection config trains a step and validates through ``cli.py fit``; every gate family runs or is refused."""

from __future__ import annotations

import pytest
import yaml

from recal.models.registry import MODULES
from tests.cli_runner import read_metrics, run_cli, run_dirs
from tests.detection.coco_fixture import write_coco
from tests.detection.runs import CONFIGS, COCO_CONFIGS, coco_fit, quickstart_fit

MAP_COLUMNS = {"val/map", "val/map_50", "val/map_75", "val/map_small", "val/map_medium", "val/map_large"}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("coco"))


def logged(run) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for row in read_metrics(run):
        for key, value in row.items():
            if value:
                values.setdefault(key, []).append(float(value))
    return values


def test_the_configs_are_the_six_recipes_and_their_ddp_versions():
    assert COCO_CONFIGS == sorted(f"{m}_{a}_coco{d}.yaml" for m in ("r50", "se_r50", "srm_r50", "ge_r50")
                                  for a in ("fpn", "retinanet") for d in ("", "_ddp")
                                  if a == "fpn" or m in ("r50", "srm_r50"))


@pytest.mark.parametrize("config", COCO_CONFIGS)
def test_coco_config_trains_and_logs_box_map(config, coco_root, tmp_path):
    assert run_cli(coco_fit(config, coco_root), tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    values = logged(run)
    assert MAP_COLUMNS <= set(values)
    assert all(-1.0 <= v[-1] <= 1.0 for k, v in values.items() if k in MAP_COLUMNS)
    losses = {"faster_rcnn": ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"),
              "retinanet": ("classification", "bbox_regression")}
    architecture = yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"]["architecture"]
    for name in ("loss", *losses[architecture]):
        assert values[f"train/{name}_epoch"][-1] > 0
    assert (run / "checkpoints" / "best.ckpt").is_file()


def test_ddp_configs_differ_from_their_single_device_ones_only_in_devices_and_scaled_lr():
    for ddp in (CONFIGS / c for c in COCO_CONFIGS if c.endswith("_ddp.yaml")):
        single = yaml.safe_load((CONFIGS / ddp.name.replace("_ddp", "")).read_text())
        multi = yaml.safe_load(ddp.read_text())
        assert (multi["trainer"]["devices"], multi["trainer"]["strategy"]) == (8, "ddp")
        assert multi["data"]["init_args"]["batch_size"] == single["data"]["init_args"]["batch_size"] == 2
        lr = {m: c["model"]["init_args"]["optimizer"]["init_args"]["lr"] for m, c in (("s", single), ("m", multi))}
        assert lr["m"] == pytest.approx(lr["s"] * 8)
        assert multi["model"]["init_args"]["warmup_iterations"] * 8 == single["model"]["init_args"]["warmup_iterations"]
        for key in ("architecture", "backbone", "weights", "trainable_layers", "min_size", "max_size"):
            assert multi["model"]["init_args"][key] == single["model"]["init_args"][key]


# sk and split attention replace a bottleneck's 3×3: the quickstart's ResNet-18 has none, ResNet-50 has
BACKBONE_FOR = {"sk": "resnet50", "splat": "resnet50"}


@pytest.mark.parametrize("family", list(MODULES))
def test_quickstart_runs_with_every_recalibration_family(family, tmp_path):
    args = quickstart_fit("--model.init_args.backbone.name", BACKBONE_FOR.get(family, "resnet18"),
                          "--model.init_args.backbone.recalibration", family)
    assert run_cli(args, tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    assert MAP_COLUMNS <= set(logged(run))


@pytest.mark.parametrize("family", ["sk", "splat"])
def test_conv_replacements_on_the_quickstarts_resnet18_are_refused_in_one_line(family, tmp_path, capsys):
    from recal.cli import main
    from tests.error_lines import the_error_line

    args = [*quickstart_fit("--model.init_args.backbone.name", "resnet18", "--model.init_args.backbone.recalibration",
                            family), "--trainer.default_root_dir", str(tmp_path)]
    capsys.readouterr()
    assert main(args) == 2
    the_error_line(capsys.readouterr().err, repr(family), "resnet18", "resnet50")
