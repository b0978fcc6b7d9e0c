"""Float vs int8 on the validation set: top-1 / top-5 of each and how often they predict the same class.

The float network is evaluated once (:func:`float_reference`), keeping every image's
predicted class; each int8 network is then evaluated on the same batches in the same
order (:func:`compare`), so that the agreement — the fraction of validation images whose
int8 argmax equals the float argmax — compares the two networks image by image.
Everything runs on the CPU: torch.ao's int8 kernels (x86 backend) exist only there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn

from recal.analysis.validation import iterate, val_batches
from recal.tasks.classification import accuracy_metrics

CPU = torch.device("cpu")


@dataclass
class FloatReference:
    """The float network's accuracy and per-image predicted class on the evaluated batches."""

    acc1: float
    acc5: float
    predictions: Tensor  # (images,) argmax classes, in loader order


@torch.inference_mode()
def _predict(model: nn.Module, datamodule: Any, num_classes: int, limit_batches: Optional[int], progress: Any,
             description: str) -> tuple[dict[str, float], Tensor]:
    model.eval()
    metrics = accuracy_metrics(num_classes)
    loader, total = val_batches(datamodule, limit_batches)
    bar = progress.add_task(description, total=total) if progress is not None else None
    predictions = []
    for x, y in iterate(loader, total, CPU):
        logits = model(x)
        metrics.update(logits, y)
        predictions.append(logits.argmax(dim=1))
        if bar is not None:
            progress.advance(bar)
    if bar is not None:
        progress.remove_task(bar)
    return {key: float(value) for key, value in metrics.compute().items()}, torch.cat(predictions)


def float_reference(model: nn.Module, datamodule: Any, num_classes: int, limit_batches: Optional[int] = None,
                    progress: Any = None, description: str = "") -> FloatReference:
    """Top-1 / top-5 of the float ``model`` on the first validation set, with its per-image predictions."""
    scores, predictions = _predict(model, datamodule, num_classes, limit_batches, progress, description)
    return FloatReference(scores["acc1"], scores["acc5"], predictions)


def compare(model: nn.Module, reference: FloatReference, datamodule: Any, num_classes: int,
            limit_batches: Optional[int] = None, progress: Any = None, description: str = "") -> dict[str, float]:
    """Top-1 / top-5 of ``model`` (int8) and its agreement with ``reference`` on the same batches."""
    scores, predictions = _predict(model, datamodule, num_classes, limit_batches, progress, description)
    if predictions.shape != reference.predictions.shape:
        raise RuntimeError("the validation batches changed between the float and the int8 pass")
    agreement = float((predictions == reference.predictions).double().mean())
    return {"acc1": scores["acc1"], "acc5": scores["acc5"], "agreement": agreement}
