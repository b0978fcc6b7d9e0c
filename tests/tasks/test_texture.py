"""TextureTask and weights loading; every DTD config through ``cli.py fit`` on a DTD fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from recal.config_paths import CONFIG_ROOT
from recal.errors import CheckpointMismatchError, InvalidOptionError
from recal.models import BackboneConfig, create_model
from recal.tasks.texture import TextureTask, multi_crop
from recal.tasks.weights import LoadedWeights, load_backbone_weights
from tests.cli_runner import last_value, run_cli, run_dirs
from tests.fixtures import write_dtd

DTD_CONFIGS = sorted(p.name for p in (CONFIG_ROOT / "dtd").glob("*.yaml"))
# Config runs swap the ResNet-50 for a small model of the same family: the run checks the config's
# wiring (task, data, optimiser, options), not ResNet-50. The plain fine-tune run keeps a torchvision file.
SMALL = {"r50": "cifar_resnet20", "se_r50": "se_cifar_resnet20", "ge_r50": "ge_cifar_resnet20",
         "srm_r50": "srm_cifar_resnet20", "r50_finetune": "resnet18"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dtd(tmp_path_factory) -> Path:
    return write_dtd(tmp_path_factory.mktemp("dtd"), classes=3, per_class=6, size=(40, 48))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """A torchvision ResNet-18 state dict and recal checkpoints (Lightning format) of gated ResNet-18s."""
    folder = tmp_path_factory.mktemp("weights")
    files = {"resnet18": folder / "resnet18-tv.pth"}
    torch.save(torchvision.models.resnet18().state_dict(), files["resnet18"])
    for name in ("se_resnet18", "srm_resnet18", "se_cifar_resnet20", "ge_cifar_resnet20", "srm_cifar_resnet20"):
        model = create_model(name, 1000, input_size=32)
        files[name] = folder / f"{name}.ckpt"
        torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                    "hyper_parameters": {"backbone": BackboneConfig(name=name, input_size=32)}}, files[name])
    return files


# ------------------------------------------------------------------------------ weights


def test_torchvision_state_dict_loads_with_a_new_head(weights):
    model = create_model("resnet18", 47)
    head = model.fc.weight.clone()
    assert load_backbone_weights(model, weights["resnet18"]) == LoadedWeights([], [])
    reference = torch.load(weights["resnet18"])
    assert torch.equal(model.layer3[1].conv2.weight, reference["layer3.1.conv2.weight"])
    assert torch.equal(model.fc.weight, head) and model.fc.out_features == 47


def test_recal_checkpoint_loads(weights):
    model = create_model("srm_resnet18", 47, input_size=32)
    load_backbone_weights(model, weights["srm_resnet18"])
    saved = torch.load(weights["srm_resnet18"], weights_only=False)["state_dict"]
    assert torch.equal(model.layer2[0].gate.bn.running_var, saved["model.layer2.0.gate.bn.running_var"])


def test_weights_of_another_architecture_name_the_file_and_the_difference(weights):
    path = weights["resnet18"]
    with pytest.raises(CheckpointMismatchError, match=rf"weights file {path} does not fit resnet50: .*key\(s\) missing"
                                                      rf".*shape mismatch\(es\): layer1.0.conv1.weight: file \(64, 64, 3, 3\)"):
        load_backbone_weights(create_model("resnet50", 47), path, model_name="resnet50")
    with pytest.raises(CheckpointMismatchError, match=r"missing from the file \(recalibration modules; allow_missing_gates"):
        load_backbone_weights(create_model("srm_resnet18", 47), path)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected key\(s\): layer1.0.gate"):
        load_backbone_weights(create_model("resnet18", 47), weights["se_resnet18"])


def test_allow_missing_gates_starts_a_gated_model_from_a_plain_resnet(weights):
    model = create_model("srm_resnet18", 47)
    kept = load_backbone_weights(model, weights["resnet18"], allow_missing_gates=True).missing_gates
    assert kept and all(".gate." in k for k in kept)
    assert torch.count_nonzero(model.layer1[0].gate.cfc.weight) == 0  # SRM's own zero init


def test_unreadable_or_missing_files_name_the_path(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match=f"weights file {junk} cannot be read"):
        load_backbone_weights(create_model("resnet18", 47), junk)
    with pytest.raises(CheckpointMismatchError, match=f"weights file {tmp_path / 'gone.pth'} does not exist"):
        load_backbone_weights(create_model("resnet18", 47), tmp_path / "gone.pth")


# ------------------------------------------------------------------------------- task


def test_head_and_backbone_get_their_own_learning_rates():
    task = TextureTask(backbone=BackboneConfig(name="srm_cifar_resnet20"), num_classes=47, head_lr=0.5,
                       backbone_lr=0.01)
    optimizer = task.configure_optimizers()
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"backbone/decay", "backbone/no_decay", "head/decay"}
    assert groups["head/decay"]["lr"] == 0.5 and groups["backbone/decay"]["lr"] == 0.01
    assert groups["backbone/no_decay"]["weight_decay"] == 0.0 and groups["backbone/no_decay"]["lr"] == 0.01
    assert {id(p) for p in groups["head/decay"]["params"]} == {id(p) for p in task.model.fc.parameters()}


def test_multi_crop_evaluation_averages_the_softmax_over_crops():
    task = TextureTask(backbone=BackboneConfig(name="cifar_resnet20"), num_classes=5, eval_crops=10, crop_size=24)
    task.eval()
    x = torch.randn(2, 3, 28, 28)
    crops = torchvision.transforms.v2.functional.ten_crop(x, [24, 24])
    expected = torch.stack([task.model(c).softmax(1) for c in crops]).mean(0)
    with torch.no_grad():
        assert torch.allclose(task(x).exp(), expected, atol=1e-5)
    task.train()
    assert task(torch.randn(2, 3, 24, 24)).shape == (2, 5)  # training sees single crops
    assert multi_crop(x, 24, 5).shape == (10, 3, 24, 24)
    with pytest.raises(InvalidOptionError, match="model.crop_size=32 is larger than the \\(28, 28\\)"):
        multi_crop(x, 32, 5)


# -------------------------------------------------------------------------------- CLI

TINY = ["--data.init_args.num_classes", "3", "--data.init_args.batch_size", "2", "--data.init_args.num_workers", "0",
        "--data.init_args.image_size", "32", "--data.init_args.resize_size", "36",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


@pytest.mark.parametrize("config", DTD_CONFIGS)
def test_every_dtd_config_fits_a_few_steps(tmp_path, dtd, weights, config):
    family = config.split("_dtd")[0]
    name = SMALL[family + "_finetune"] if family == "r50" and "finetune" in config else SMALL[family]
    args = ["fit", "--config", f"dtd/{config}", "--data.init_args.root", str(dtd), *TINY,
            "--model.init_args.backbone.name", name, "--model.init_args.backbone.input_size", "32"]
    if "finetune" in config:
        args += ["--model.init_args.weights", str(weights[name]), "--model.init_args.crop_size", "32",
                 "--data.init_args.eval_crop_size", "36"]
    assert run_cli(args, tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    assert 0.0 <= last_value(run, "val/acc1") <= 1.0
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "config.yaml").is_file()


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def test_partition_outside_1_to_10_exits_with_a_short_message(tmp_path, dtd, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a failed run must leave nothing behind in the repository
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--config", "dtd/srm_r50_dtd.yaml", "--data.init_args.root", str(dtd),
                 "--data.init_args.partition", "11"], tmp_path)
    assert exit_info.value.code == 2
    line = _error_line(capsys)
    assert "partition" in line and "11" in line and "10" in line


def test_fold_outside_range_exits_with_a_short_message(tmp_path, dtd, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a failed run must leave nothing behind in the repository
    rc = run_cli(["fit", "--config", "dtd/srm_r50_dtd.yaml", "--data.init_args.root", str(dtd), *TINY,
                  "--data.init_args.protocol", "kfold", "--data.init_args.fold", "5"], tmp_path)
    assert rc == 2
    assert "data.fold=5; expected 0..4" in _error_line(capsys)


def test_weights_of_another_architecture_exit_with_a_short_message(tmp_path, dtd, weights, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a failed run must leave nothing behind in the repository
    rc = run_cli(["fit", "--config", "dtd/srm_r50_dtd_finetune.yaml", "--data.init_args.root", str(dtd), *TINY,
                  "--model.init_args.weights", str(weights["resnet18"])], tmp_path)
    assert rc == 2
    line = _error_line(capsys)
    assert f"weights file {weights['resnet18']} does not fit srm_resnet50" in line
