"""The detection backbone: weights loaded, BatchNorms frozen from weights (gates too), trained otherwise; GE any size."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from recal.errors import InvalidOptionError
from recal.layers import SRM, GatherExcite
from recal.models import BackboneConfig
from recal.tasks.dense_backbone import (FrozenBatchNorm1d, check_trainable_gate_batch_norms, dense_backbone,
                                        gate_batch_norms)
from recal.tasks.detection import DetectionTask
from tests.cli_runner import run_cli, run_dirs

TINY = dict(min_size=64, max_size=96, fpn_channels=32, box_batch_size_per_image=16)


def images_and_targets(sizes=((64, 96), (80, 64))):
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, h, w, generator=generator) for h, w in sizes]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])} for _ in sizes]
    return images, targets


def with_random_statistics(model: nn.Module) -> nn.Module:
    """``model`` with BatchNorm statistics and affine away from their init, so a reset would show."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for tensor in (module.running_mean, module.weight.data, module.bias.data):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model


def train_steps(task: DetectionTask, steps: int = 3) -> None:
    images, targets = images_and_targets()
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    task.train()
    for _ in range(steps):
        loss = sum(task(images, targets).values())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def norm_state(model: nn.Module, kinds) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.clone() for name, module in model.named_modules() if isinstance(module, kinds)
            for key, value in module.state_dict().items() if key != "num_batches_tracked"}


@pytest.fixture(scope="module")
def srm_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "srm_resnet18.pt"
    state = with_random_statistics(BackboneConfig(name="srm_resnet18").build(1000)).state_dict()
    torch.save(state, path)
    return path, state


def test_batch_norms_stay_frozen_when_starting_from_weights(srm_weights):
    path, state = srm_weights
    task = DetectionTask(backbone=BackboneConfig(name="srm_resnet18"), num_classes=3, weights=str(path), **TINY)
    body = task.model.backbone.body
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in body.modules())
    srm = [m for m in body.modules() if isinstance(m, SRM)]
    assert srm and all(isinstance(m.bn, FrozenBatchNorm1d) for m in srm)
    # the file's statistics and affine, in the backbone's and the gates' frozen BatchNorms
    frozen = norm_state(body, FrozenBatchNorm2d)
    assert frozen and all(torch.equal(value, state[key]) for key, value in frozen.items())
    train_steps(task)
    after = norm_state(body, FrozenBatchNorm2d)
    assert all(torch.equal(after[key], frozen[key]) for key in frozen)
    # torchvision's default from weights: layer2..4 train, layer1 and the stem stay as loaded
    assert torch.equal(body.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert not torch.equal(body.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])
    check_trainable_gate_batch_norms(task.model, batch_size=1)  # frozen gate BatchNorms take one image


def test_batch_norms_train_from_scratch_gates_included():
    torch.manual_seed(0)
    task = DetectionTask(backbone=BackboneConfig(name="srm_resnet18"), num_classes=3, weights=None, **TINY)
    body = task.model.backbone.body
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    assert all(p.requires_grad for p in body.parameters())  # the getter keeps conv1 … layer4, no head
    before = norm_state(body, nn.modules.batchnorm._BatchNorm)
    gate_keys = [k for k in before if ".gate.bn." in k]
    assert gate_keys
    train_steps(task, steps=2)
    after = norm_state(body, nn.modules.batchnorm._BatchNorm)
    for key in ("bn1.running_mean", "layer1.0.bn1.weight", gate_keys[0], "layer4.1.gate.bn.running_var"):
        assert not torch.equal(after[key], before[key]), key


def test_one_image_per_device_is_refused_while_gate_batch_norms_train():
    body = dense_backbone(BackboneConfig(name="srm_resnet18"), None, 5)
    assert gate_batch_norms(body)[0] == "layer1.0.gate.bn"
    with pytest.raises(InvalidOptionError, match=r"data\.batch_size=1.*layer1\.0\.gate\.bn"):
        check_trainable_gate_batch_norms(body, 1)
    check_trainable_gate_batch_norms(body, 2)
    check_trainable_gate_batch_norms(dense_backbone(BackboneConfig(name="resnet18"), None, 5), 1)


@pytest.mark.parametrize("layers, trained", [(0, []), (3, ["layer2", "layer3", "layer4"]),
                                             (5, ["bn1", "conv1", "layer1", "layer2", "layer3", "layer4"])])
def test_trainable_layers_follow_torchvision(layers, trained):
    body = dense_backbone(BackboneConfig(name="resnet18"), None, layers)
    names = sorted({name.split(".")[0] for name, p in body.named_parameters() if p.requires_grad} - {"fc"})
    assert names == trained


@pytest.mark.parametrize("layers", [6, -1])
def test_trainable_layers_out_of_range_is_one_line(layers):
    with pytest.raises(InvalidOptionError, match=rf"trainable_layers={layers}.*0.*5"):
        dense_backbone(BackboneConfig(name="resnet18"), None, layers)


def test_a_network_without_resnet_stages_is_refused():
    with pytest.raises(InvalidOptionError, match="srm_cifar_resnet20.*layer4.*conv1, bn1 and layer1..4"):
        dense_backbone(BackboneConfig(name="srm_cifar_resnet20"), None, 5)


def test_a_recalibrated_torchvision_resnet_is_a_backbone_too():
    task = DetectionTask(backbone=BackboneConfig(name="torchvision.resnet18", recalibration="se"), num_classes=3,
                         **TINY)
    task.eval()
    with torch.no_grad():
        (found,) = task([torch.rand(3, 64, 96)])
    assert found["boxes"].shape[1] == 4


def test_ge_at_its_built_size_is_the_classification_gate_exactly():
    config = BackboneConfig(name="ge_resnet18", input_size=64)
    classifier = config.build(1000).eval()
    body = dense_backbone(config, None, 5).eval()
    body.load_state_dict(classifier.state_dict())
    gates = [m for m in body.modules() if isinstance(m, GatherExcite)]
    assert gates and all(g.pool_to_built_size for g in gates)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(body.forward_features(x), classifier.forward_features(x))
        with pytest.raises(InvalidOptionError, match="built for 16×16"):
            classifier.forward_features(torch.randn(1, 3, 64, 96))


def test_ge_detector_runs_at_other_non_square_sizes():
    torch.manual_seed(0)
    task = DetectionTask(backbone=BackboneConfig(name="ge_resnet18", input_size=64), num_classes=3, **TINY)
    seen = []
    for gate in (m for m in task.modules() if isinstance(m, GatherExcite)):
        gate.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape[-2:])))
    task.eval()
    with torch.no_grad():  # one image per call: a batch is padded to its largest image
        found = [task([image])[0] for image in (torch.rand(3, 64, 128), torch.rand(3, 96, 64))]
    # resized to 48×96 (max_size) and 96×64, padded to multiples of 32: layer1 maps 16×24 and 24×16
    assert {(16, 24), (24, 16)} <= set(seen)
    for image_found in found:
        assert image_found["boxes"].shape[1] == 4 and torch.isfinite(image_found["boxes"]).all()
        assert torch.isfinite(image_found["scores"]).all()
    train_steps(task, steps=1)  # and trains at those sizes


def test_a_recal_classification_checkpoint_loads_into_the_detection_backbone(tmp_path):
    args = ["fit", "--config", "configs/quickstart.yaml", "--model.init_args.backbone.name", "srm_resnet18",
            "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--data.init_args.batch_size", "8"]
    assert run_cli(args, tmp_path / "cls") == 0
    (run,) = run_dirs(tmp_path / "cls")
    checkpoint = run / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    task = DetectionTask(backbone=BackboneConfig(name="srm_resnet18"), num_classes=3, weights=str(checkpoint),
                         **TINY)
    body = task.model.backbone.body.state_dict()
    compared = [k for k in body if f"model.{k}" in saved and not k.startswith("fc.")]
    assert len(compared) > 100
    assert all(torch.equal(body[k], saved[f"model.{k}"]) for k in compared)


def test_the_warmup_is_per_iteration_and_chains_with_the_epoch_schedule():
    task = DetectionTask(backbone=BackboneConfig(name="resnet18"), num_classes=3, warmup_iterations=4,
                         warmup_factor=0.1, optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
                         lr_scheduler=lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[1]), **TINY)
    config = task.configure_optimizers()
    optimizer, epoch_schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "epoch"
    lrs = [optimizer.param_groups[0]["lr"]]
    for step in range(6):
        optimizer.step()
        task.on_train_batch_end(None, None, step)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.01, 0.0325, 0.055, 0.0775, 0.1, 0.1, 0.1])
    epoch_schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
