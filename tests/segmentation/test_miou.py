"""The task's mIoU and pixel accuracy on hand-made cases with known answers, through its validation step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recal.models import BackboneConfig
from recal.tasks.segmentation import SegmentationTask, segmentation_metrics

# the validation step logs; outside a Trainer Lightning warns and skips the logging, the metrics still update
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:You are trying to `self.log")]


class FixedLogits(nn.Module):
    """Stands in for the network: one-hot logits of the prediction it is given."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.prediction: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": F.one_hot(self.prediction, self.num_classes).permute(0, 3, 1, 2).float()}


@pytest.fixture(scope="module")
def task() -> SegmentationTask:
    return SegmentationTask(BackboneConfig(name="resnet18"), num_classes=3, head="fcn", aux_loss=False)


def scores(task: SegmentationTask, cases: list[tuple[list, list]]) -> tuple[float, float]:
    """(mIoU, pixel accuracy) of the validation steps over ``cases`` of (prediction, target), one image each."""
    task.val_metrics = segmentation_metrics(task.hparams.num_classes)
    task.model = FixedLogits(task.hparams.num_classes)
    for batch_idx, (prediction, target) in enumerate(cases):
        prediction, target = torch.tensor([prediction]), torch.tensor([target])
        task.model.prediction = prediction
        task.validation_step((torch.zeros(1, 3, *target.shape[1:]), target), batch_idx)
    return float(task.val_metrics["miou"].compute()), float(task.val_metrics["pixel_acc"].compute())


TARGET = [[0, 0, 1, 1], [2, 2, 2, 0]]


def test_a_perfect_prediction_scores_1(task: SegmentationTask) -> None:
    assert scores(task, [(TARGET, TARGET)]) == (1.0, 1.0)


def test_an_all_wrong_prediction_scores_0(task: SegmentationTask) -> None:
    wrong = [[(c + 1) % 3 for c in row] for row in TARGET]
    assert scores(task, [(wrong, TARGET)]) == (0.0, 0.0)


def test_a_partial_prediction_scores_the_hand_computed_iou(task: SegmentationTask) -> None:
    prediction = [[0, 1, 1, 1], [2, 2, 0, 0]]
    # class 0: 2 right of union {(0,0),(0,1),(1,2),(1,3)} = 2/4; class 1: 2/3; class 2: 2/3
    miou, accuracy = scores(task, [(prediction, TARGET)])
    assert miou == pytest.approx((2 / 4 + 2 / 3 + 2 / 3) / 3)
    assert accuracy == pytest.approx(6 / 8)


def test_pixels_labelled_255_are_not_counted(task: SegmentationTask) -> None:
    target = [[0, 0, 1, 255], [2, 2, 255, 0]]
    prediction = [[0, 0, 1, 1], [2, 2, 0, 0]]
    changed = [[0, 0, 1, 2], [2, 2, 1, 0]]  # different only where the target is 255
    assert scores(task, [(prediction, target)]) == scores(task, [(changed, target)]) == (1.0, 1.0)


def test_miou_is_dataset_level_not_a_mean_over_images(task: SegmentationTask) -> None:
    large = ([[0, 0, 0, 0, 1, 1, 1, 1, 2, 2]], [[0, 0, 0, 0, 1, 1, 1, 1, 2, 2]])  # perfect: its own mIoU 1
    small = ([[1, 2, 0]], [[0, 1, 2]])  # all wrong: its own mIoU 0
    per_image = [scores(task, [case])[0] for case in (large, small)]
    assert sum(per_image) / 2 == 0.5
    # summed over both images: class 0 4/6, class 1 4/6, class 2 2/4
    miou, accuracy = scores(task, [large, small])
    assert miou == pytest.approx((4 / 6 + 4 / 6 + 2 / 4) / 3)
    assert accuracy == pytest.approx(10 / 13)
