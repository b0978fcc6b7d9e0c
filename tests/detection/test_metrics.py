"""Box mAP on hand-made cases with known answers (COCO protocol through torchmetrics)."""

from __future__ import annotations

import pytest
import torch

from recal.tasks.detection_metrics import MAP_KEYS, box_map, metric_inputs

GT = torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0]])  # 100×100: COCO "large" (> 96²)


def scores(detections, targets) -> dict[str, float]:
    metric = box_map()
    metric.update(*metric_inputs(detections, targets))
    result = metric.compute()
    return {key: float(result[key]) for key in MAP_KEYS}


def target(boxes=GT, labels=(1, 18), **extra) -> dict:
    return {"boxes": boxes, "labels": torch.tensor(labels), **extra}


def found(boxes, labels, score=0.9) -> dict:
    return {"boxes": boxes, "labels": torch.tensor(labels), "scores": torch.full((len(labels),), score)}


def test_perfect_predictions_score_one():
    result = scores([found(GT, (1, 18))], [target()])
    assert result["map"] == result["map_50"] == result["map_75"] == result["map_large"] == 1.0
    assert result["map_small"] == result["map_medium"] == -1.0  # no ground truth of those sizes


def test_no_predictions_score_zero():
    result = scores([found(torch.zeros(0, 4), ())], [target()])
    assert result["map"] == result["map_50"] == result["map_75"] == 0.0


def test_the_right_box_with_the_wrong_category_scores_zero():
    assert scores([found(GT, (18, 1))], [target()])["map_50"] == 0.0


def test_a_shifted_box_counts_below_its_iou_and_not_above():
    # shifting a 100-pixel box by d along x gives IoU (100 - d) / (100 + d); d = 300/13 gives 0.625
    d = 300 / 13
    shifted = GT + torch.tensor([d, 0.0, d, 0.0])
    result = scores([found(shifted, (1, 18))], [target()])
    assert result["map_50"] == 1.0 and result["map_75"] == 0.0
    # matched at IoU thresholds 0.50, 0.55, 0.60 of the ten 0.50:0.95
    assert result["map"] == pytest.approx(0.3, abs=1e-6)


def test_a_detection_on_a_crowd_region_is_not_a_false_positive():
    crowd = torch.tensor([[400.0, 0.0, 500.0, 100.0]])
    truth = target(torch.cat([GT, crowd]), (1, 18, 1), iscrowd=torch.tensor([0, 0, 1]))
    # the crowd detection scores highest: counted as a false positive it would lower class 1's AP
    detections = {"boxes": torch.cat([crowd, GT]), "labels": torch.tensor([1, 1, 18]),
                  "scores": torch.tensor([0.99, 0.9, 0.9])}
    assert scores([detections], [truth])["map"] == 1.0
    # without the crowd region the same detection is a false positive ranked first
    assert scores([detections], [target()])["map"] < 1.0
