"""The calls the network benchmarks time: a train step and an inference step, in a :class:`Setting`."""

from __future__ import annotations

from typing import Callable

import torch

from benchmarks.timing import Setting


def train_step(model: torch.nn.Module, batch: int, size: int, setting: Setting = Setting(),
               classes: int = 10) -> Callable[[], None]:
    """One SGD step on a fixed random batch: forward and loss under the setting's autocast, backward outside.

    The labels are drawn from the first ``classes`` classes, which every classifier has (a CIFAR
    network's 10 as an ImageNet one's 1000): the time of a step does not depend on them.
    """
    model = setting.place(model.train())
    x = setting.tensor(torch.randn(batch, 3, size, size))
    y = setting.tensor(torch.randint(0, classes, (batch,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        with setting.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return run


def inference_step(model: torch.nn.Module, batch: int, size: int, setting: Setting = Setting()) -> Callable[[], None]:
    """One eval-mode forward without gradients, under the setting's autocast."""
    model = setting.place(model.eval())
    x = setting.tensor(torch.randn(batch, 3, size, size))

    def run() -> None:
        with torch.inference_mode(), setting.autocast():
            model(x)
    return run
