"""Box mAP under the COCO protocol, through torchmetrics' ``MeanAveragePrecision`` (pycocotools backend).

:func:`box_map` is the metric the detection task logs: ``iou_type="bbox"``, boxes ``x1, y1, x2,
y2``, COCO's 10 IoU thresholds 0.50:0.95, its area ranges and 100 detections per image.
Targets may carry ``iscrowd``: COCO's crowd regions, which a detection may match without
counting as a false positive and never as a true one. :data:`MAP_KEYS` are the values logged
as ``val/<key>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision

__all__ = ["MAP_KEYS", "box_map", "metric_inputs"]

MAP_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")


def box_map() -> MeanAveragePrecision:
    """COCO box mAP (see the module docstring)."""
    # the metric computes its thresholds with torch.linspace(...).tolist(): that needs real tensors even
    # where the task is built on the meta device (counting parameters); it holds no parameters itself
    import pycocotools  # noqa: F401 — the metric's backend: missing, the run stops now, not at the first validation

    with torch.device("cpu"):
        return MeanAveragePrecision(box_format="xyxy", iou_type="bbox")


def metric_inputs(detections: Sequence[dict[str, Tensor]], targets: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """The ``(preds, target)`` lists ``MeanAveragePrecision.update`` takes, from detector outputs and targets."""
    preds = [{"boxes": d["boxes"].detach(), "scores": d["scores"].detach(), "labels": d["labels"]} for d in detections]
    truth = []
    for t in targets:
        entry = {"boxes": t["boxes"], "labels": t["labels"]}
        if "iscrowd" in t:
            entry["iscrowd"] = t["iscrowd"]
        truth.append(entry)
    return preds, truth
