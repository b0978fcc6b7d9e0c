"""Which tasks hold a classification network, and the image size it is exported at."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from recal.deploy.classifier import classification_network, network_input_size, refusal
from recal.errors import InvalidOptionError
from recal.models import BackboneConfig
from recal.tasks import ClassificationTask, MultiDomainTask, StyleTransferTask, TextureTask


@pytest.mark.parametrize("task_class, hparams", [(ClassificationTask, {}), (TextureTask, {"eval_crops": 10}),
                                                 (MultiDomainTask, {"domain_specific_recalibration": False})])
def test_classification_tasks_and_subclasses_qualify(task_class: type, hparams: dict) -> None:
    assert refusal(task_class, hparams) is None


@pytest.mark.parametrize("task_class, hparams, names", [
    (StyleTransferTask, {}, ["StyleTransferTask", "not a classification task"]),
    (MultiDomainTask, {"domain_heads": True}, ["MultiDomainTask", "domain_heads: true", "domain id"]),
    (MultiDomainTask, {"domain_specific_recalibration": True}, ["domain_specific_recalibration: true"]),
])
def test_other_tasks_are_refused_by_name(task_class: type, hparams: dict, names: list[str]) -> None:
    reason = refusal(task_class, hparams)
    assert reason is not None and "\n" not in reason
    assert all(name in reason for name in names), reason


def test_classification_network_is_the_task_model_and_refuses_other_tasks() -> None:
    task = ClassificationTask(backbone=BackboneConfig(name="cifar_resnet20"), num_classes=3)
    assert classification_network(task, "run.ckpt") is task.model
    with pytest.raises(InvalidOptionError, match="checkpoint run.ckpt is a CifarResNet checkpoint, not a classification task"):
        classification_network(task.model, "run.ckpt")


def task(name: str, input_size: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(hparams={"backbone": {"name": name, "input_size": input_size}})


@pytest.mark.parametrize("network, data, size", [
    (task("srm_cifar_resnet20"), None, 32),  # CIFAR datamodules have no size attribute: the family's
    (task("srm_resnet50"), None, 224),
    (task("srm_resnet50"), SimpleNamespace(image_size=160), 160),
    (task("srm_resnet50"), SimpleNamespace(image_size=224, eval_crop_size=256), 256),  # DTD's evaluation crop
    (task("srm_cifar_resnet20", input_size=48), SimpleNamespace(image_size=64), 48),  # what the gates were built for
    (task("torchvision.resnet18"), None, 224),
])
def test_the_input_size_comes_from_the_backbone_the_data_or_the_family(network, data, size: int) -> None:
    assert network_input_size(network, data) == size
