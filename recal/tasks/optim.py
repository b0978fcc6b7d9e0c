"""Optimiser parameter groups and learning-rate schedules shared by every task.

The optimiser and the main schedule come from the config as callables
(LightningCLI's ``OptimizerCallable`` / ``LRSchedulerCallable``), so any
``torch.optim`` class works. What this module adds: the no-weight-decay group of
the official SRM recipe (see :mod:`recal.models.param_groups`), and an optional
linear warmup in front of the main schedule.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR, LRScheduler, SequentialLR

from recal.models.param_groups import NoDecayScope, no_weight_decay_parameters

OptimizerFactory = Callable[[Iterable], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


def default_optimizer(params: Iterable) -> Optimizer:
    """The SRM ImageNet recipe's optimiser: SGD, lr 0.1, momentum 0.9, weight decay 1e-4."""
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)


def parameter_groups(model: nn.Module, no_decay: NoDecayScope = "srm") -> list[dict[str, Any]]:
    """Two groups: everything else (the optimiser's weight decay) and the no-decay set (0)."""
    skip = {id(p) for p in no_weight_decay_parameters(model, no_decay)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in skip], "name": "decay"}]
    no_decay_params = [p for p in trainable if id(p) in skip]
    if no_decay_params:
        groups.append({"params": no_decay_params, "weight_decay": 0.0, "name": "no_decay"})
    return groups


def with_warmup(optimizer: Optimizer, scheduler: LRScheduler | None, warmup_epochs: int, start_factor: float = 0.01) -> LRScheduler | None:
    """Prefix ``scheduler`` with ``warmup_epochs`` of linear warmup from ``start_factor``·lr.

    The main schedule starts counting when the warmup ends (a MultiStepLR
    milestone 31 then falls at epoch warmup + 31).
    """
    if warmup_epochs <= 0:
        return scheduler
    warmup = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_epochs)
    if scheduler is None:
        return warmup
    return SequentialLR(optimizer, [warmup, scheduler], milestones=[warmup_epochs])
