"""The segmentation network: torchvision's DeepLabV3 / FCN tensor for tensor, output stride 8, recal weights loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.segmentation import deeplabv3_resnet50, fcn_resnet50
from torchvision.ops import FrozenBatchNorm2d

from recal.errors import CheckpointMismatchError
from recal.models import BackboneConfig, create_model
from recal.tasks.segmentation import SegmentationTask
from tests.cli_runner import run_cli
from tests.module_fixtures import randomize  # noqa: F401  (a fixture)
from tests.error_lines import the_error_line

pytestmark = pytest.mark.usefixtures("one_thread")

OS8 = [False, True, True]


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


@pytest.mark.parametrize("head, torchvision_builder", [("deeplabv3", deeplabv3_resnet50), ("fcn", fcn_resnet50)])
def test_the_network_is_torchvisions_tensor_for_tensor(head: str, torchvision_builder) -> None:
    ours = SegmentationTask(BackboneConfig(name="resnet50", replace_stride_with_dilation=OS8), num_classes=21,
                            head=head, aux_loss=True).model
    # weights and weights_backbone None: torchvision builds its untrained network, nothing is downloaded
    theirs = torchvision_builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    assert shapes(ours) == shapes(theirs)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        for key, value in theirs.eval()(x).items():
            torch.testing.assert_close(ours.eval()(x)[key], value)


def test_logits_come_at_the_input_size_from_stride_8_maps() -> None:
    task = SegmentationTask(BackboneConfig(name="srm_resnet18", replace_stride_with_dilation=OS8), num_classes=3,
                            head="deeplabv3", aux_loss=True)
    seen = {}
    task.model.backbone.layer4.register_forward_hook(lambda m, a, out: seen.update(layer4=tuple(out.shape[-2:])))
    with torch.no_grad():
        outputs = task.model.eval()(torch.randn(2, 3, 64, 96))
    assert seen["layer4"] == (8, 12)
    assert outputs["out"].shape == outputs["aux"].shape == (2, 3, 64, 96)


@pytest.mark.parametrize("as_checkpoint", [False, True], ids=["state_dict", "lightning_checkpoint"])
def test_recal_classification_weights_load_into_the_backbone(as_checkpoint: bool, tmp_path: Path, randomize) -> None:
    classifier = randomize(create_model("resnet18", 10), scale=0.2)
    classifier.bn1.running_mean.uniform_(-1, 1)
    state = classifier.state_dict()
    path = tmp_path / "resnet18.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}} if as_checkpoint else state, path)
    task = SegmentationTask(BackboneConfig(name="resnet18", replace_stride_with_dilation=OS8), num_classes=2,
                            head="fcn", aux_loss=False, weights=str(path))
    backbone = task.model.backbone
    torch.testing.assert_close(backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert backbone.layer4[1].conv2.dilation == (4, 4)  # the same tensor, now dilated
    assert isinstance(backbone.bn1, FrozenBatchNorm2d)  # started from weights: BatchNorms frozen
    torch.testing.assert_close(backbone.bn1.running_mean, state["bn1.running_mean"])
    assert "fc.weight" not in dict(backbone.named_parameters())  # the classifier head is not part of it


def test_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet34.pth"
    torch.save(create_model("resnet34", 10).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=str(path)):
        SegmentationTask(BackboneConfig(name="resnet18"), num_classes=2, head="fcn", aux_loss=False, weights=str(path))


def test_a_batch_of_one_with_trainable_gate_batch_norms_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = str(Path(__file__).parents[2] / "configs" / "segmentation" / "quickstart.yaml")
    rc = run_cli(["fit", "--config", config, "--data.batch_size", "1", "--trainer.max_steps", "1"], tmp_path)
    assert rc == 2
    the_error_line(capsys.readouterr().err, "data.batch_size=1")
