"""Rebuild a task from a saved checkpoint and run its network on a fixed input."""

from __future__ import annotations

import importlib

import lightning as L
import torch
from torch import Tensor

from recal.models import BackboneConfig


def task_from_checkpoint(checkpoint: dict) -> L.LightningModule:
    """The task the checkpoint's hyperparameters describe, with its weights (strict), in eval mode."""
    hyper_parameters = dict(checkpoint["hyper_parameters"])
    module_name, _, class_name = hyper_parameters["_class_path"].rpartition(".")
    task_class = getattr(importlib.import_module(module_name), class_name)
    arguments = {k: v for k, v in hyper_parameters.items() if not k.startswith("_")}
    if isinstance(arguments.get("backbone"), dict):  # saved as plain data (weights_only loading)
        arguments["backbone"] = BackboneConfig(**arguments["backbone"])
    task = task_class(**arguments)
    task.load_state_dict(checkpoint["state_dict"])
    return task.eval()


def fixed_input() -> Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def network_outputs(task: L.LightningModule, x: Tensor) -> dict[str, Tensor]:
    """What the task's network computes on ``x``: logits (per domain id) or stylised images, and features."""
    name = type(task).__name__
    if name == "StyleTransferTask":
        return {"output": task(x.sigmoid() * 255)}
    if name == "MultiDomainTask":
        return {"output": task(x, torch.tensor([0, 3])), "output_domain_2": task(x, 2)}
    return {"output": task(x), "features": task.model.forward_features(x)}
