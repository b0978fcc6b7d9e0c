"""Channel pruning by recalibration weight, through the gate modules' ``channel_mask``.

The SRM paper prunes, in every gated block, the channels whose mean gate over
the validation set is lowest, and compares the accuracy drop of SE and SRM
networks: a module whose gates separate useful from useless channels loses
less. Here fraction f zeroes ``round(f · C)`` channels (Python's ``round``) in
each gated block of C channels by setting their ``channel_mask`` entries to 0;
nothing else in the network changes. A random choice of the same number of
channels per block (seeded) is the baseline. Fraction 0 runs the same masked
path with all-ones masks, so it equals a plain validation of the checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from recal.analysis.gates import GateRecorder, gated_blocks, iterate, val_batches
from recal.layers.gate import ChannelGate
from recal.tasks.classification import accuracy_metrics

FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def pruned_count(fraction: float, channels: int) -> int:
    """How many of a block's ``channels`` fraction ``fraction`` prunes: ``round(f · C)``."""
    return int(round(fraction * channels))


def lowest_gate_masks(channel_means: Mapping[str, np.ndarray], fraction: float) -> dict[str, Tensor]:
    """Per block, a mask that zeroes the ``round(f · C)`` channels with the lowest mean gate."""
    masks = {}
    for name, means in channel_means.items():
        mask = torch.ones(len(means))
        # stable sort: ties go to the lower channel index, so the result is reproducible
        order = np.argsort(np.asarray(means), kind="stable")
        mask[torch.from_numpy(order[: pruned_count(fraction, len(means))].copy())] = 0.0
        masks[name] = mask
    return masks


def random_masks(channels: Mapping[str, int], fraction: float, seed: int) -> dict[str, Tensor]:
    """Per block, a mask that zeroes ``round(f · C)`` channels drawn at random (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for name, count in channels.items():
        mask = torch.ones(count)
        mask[torch.randperm(count, generator=generator)[: pruned_count(fraction, count)]] = 0.0
        masks[name] = mask
    return masks


@contextlib.contextmanager
def masked(blocks: Mapping[str, ChannelGate], masks: Mapping[str, Tensor]) -> Iterator[None]:
    """Set each block's ``channel_mask`` (all ones where ``masks`` has none); restore afterwards."""
    saved = {name: gate.channel_mask.clone() for name, gate in blocks.items()}
    try:
        for name, gate in blocks.items():
            mask = masks.get(name)
            gate.channel_mask.copy_(torch.ones_like(gate.channel_mask) if mask is None else mask)
        yield
    finally:
        for name, gate in blocks.items():
            gate.channel_mask.copy_(saved[name])


@torch.no_grad()
def evaluate(task: Any, datamodule: Any, device: torch.device, limit_batches: Optional[int] = None,
             recorder: Optional[GateRecorder] = None, progress: Any = None, description: str = "") -> dict[str, float]:
    """Top-1 / top-5 of ``task`` in eval mode on the first validation set, with the task's own metrics.

    With a ``recorder``, its gate hooks run during the pass (the batch labels
    are passed on for per-class statistics).
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


def prune_curves(task: Any, datamodule: Any, fractions: Sequence[float] = FRACTIONS, seeds: Sequence[int] = (0, 1, 2),
                 device: torch.device = torch.device("cpu"), limit_batches: Optional[int] = None,
                 progress: Any = None, label: str = "") -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Evaluate ``task`` with the lowest-gate and random channels of every block masked.

    Returns one row per (method, seed, fraction) — method ``gate`` (seed empty)
    or ``random`` — with ``acc1``, ``acc5`` and the number of channels pruned,
    and the per-block mean gates the ranking used (from the fraction-0 pass).
    """
    blocks = gated_blocks(task)
    channels = {name: gate.channels for name, gate in blocks.items()}
    total_channels = sum(channels.values())
    recorder = GateRecorder(blocks)
    # Fraction 0: all-ones masks on the same path; it also measures the mean gates.
    with masked(blocks, {}):
        base = evaluate(task, datamodule, device, limit_batches, recorder, progress, f"{label} f=0 (mean gates)")
    means = {name: stats.channel_means() for name, stats in recorder.stats.items()}

    def row(method: str, seed: Optional[int], fraction: float, result: Mapping[str, float]) -> dict[str, Any]:
        pruned = sum(pruned_count(fraction, c) for c in channels.values())
        return {"method": method, "seed": seed, "fraction": fraction, "pruned_channels": pruned,
                "total_channels": total_channels, "acc1": result["acc1"], "acc5": result["acc5"]}

    rows = []
    for fraction in fractions:
        if fraction == 0:
            rows.append(row("gate", None, 0.0, base))
            rows += [row("random", seed, 0.0, base) for seed in seeds]  # the same all-ones masks
            continue
        with masked(blocks, lowest_gate_masks(means, fraction)):
            rows.append(row("gate", None, fraction, evaluate(task, datamodule, device, limit_batches,
                                                              progress=progress, description=f"{label} f={fraction:g} gate")))
        for seed in seeds:
            with masked(blocks, random_masks(channels, fraction, seed)):
                rows.append(row("random", seed, fraction, evaluate(
                    task, datamodule, device, limit_batches, progress=progress,
                    description=f"{label} f={fraction:g} random seed {seed}")))
    return rows, means
