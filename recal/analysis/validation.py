"""One pass of a task's network over its validation batches: what pruning and gate statistics measure with.

:func:`evaluate` runs the task in eval mode on the first validation set (all of it, or
its first ``limit_batches`` batches), with a rich progress bar when given one, and
returns the task's own top-1 / top-5. A recorder (:class:`recal.analysis.gates.GateRecorder`)
watches the same pass: it is entered around it and told every batch's labels before
that batch's forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Optional, Protocol

import torch
from torch import Tensor

from recal.tasks.classification import accuracy_metrics


class BatchRecorder(Protocol):
    """What watches a pass: a context manager told each batch's labels before its forward."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...

    def set_targets(self, targets: Tensor) -> None: ...


def val_batches(datamodule: Any, limit_batches: Optional[int] = None) -> tuple[Any, int]:
    """The first validation loader of ``datamodule`` and how many of its batches to use."""
    datamodule.setup("validate")
    loader = datamodule.val_dataloader()
    loader = loader[0] if isinstance(loader, (list, tuple)) else loader
    total = len(loader) if limit_batches is None else min(len(loader), limit_batches)
    return loader, total


def iterate(loader: Any, total: int, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, y)`` of the first ``total`` batches, on ``device``."""
    for i, batch in enumerate(loader):
        if i >= total:
            break
        yield batch[0].to(device), batch[1].to(device)


@torch.no_grad()
def evaluate(task: Any, datamodule: Any, device: torch.device, limit_batches: Optional[int] = None,
             recorder: Optional[BatchRecorder] = None, progress: Any = None, description: str = "") -> dict[str, float]:
    """Top-1 / top-5 of ``task`` in eval mode on the first validation set, with the task's own metrics.

    With a ``recorder``, it watches the pass (see the module docstring); with a rich
    ``progress``, a bar named ``description`` shows the batches and is removed at the end.
    """
    task.eval().to(device)
    metrics = accuracy_metrics(task.hparams.num_classes).to(device)
    loader, total = val_batches(datamodule, limit_batches)
    bar = progress.add_task(description, total=total) if progress is not None else None
    with recorder if recorder is not None else contextlib.nullcontext():
        for x, y in iterate(loader, total, device):
            if recorder is not None:
                recorder.set_targets(y)
            metrics.update(task(x), y)
            if bar is not None:
                progress.advance(bar)
    if bar is not None:
        progress.remove_task(bar)
    return {key: float(value) for key, value in metrics.compute().items()}
