"""A training DataLoader that Lightning can checkpoint and resume mid-epoch.

Lightning saves ``state_dict()`` of every train loader that has one into the
checkpoint and calls ``load_state_dict()`` on resume. Our state is the epoch
and how many batches of it training has *completed* — read from the trainer's
own progress counters, not from the loader, which runs ahead by its prefetch.
On resume the sampler skips exactly those samples, and because augmentation is
seeded by (seed, epoch, index), the rest of the epoch replays bit for bit.
"""

from __future__ import annotations

from typing import Any, Callable

from torch.utils.data import DataLoader

from recal.data.sampling import EpochSeededSampler


class ResumableDataLoader(DataLoader):
    """DataLoader over an :class:`EpochSeededSampler` with Lightning's state interface.

    ``batches_completed`` returns how many batches of the current epoch training
    has finished (the datamodule wires it to the trainer's batch progress).
    """

    def __init__(self, *args: Any, batches_completed: Callable[[], int] = lambda: 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSeededSampler):
            raise TypeError("ResumableDataLoader needs an EpochSeededSampler")
        self.batches_completed = batches_completed

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_completed": int(self.batches_completed())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, done = state["epoch"], state["batches_completed"]
        if done >= len(self):  # saved at the end of the epoch: the next one starts afresh
            self.sampler.set_epoch(epoch + 1)
        else:
            self.sampler.resume_at(epoch, done * self.batch_size)
