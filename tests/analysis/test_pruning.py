"""Pruning through ``channel_mask``: exactly round(f·C) channels per block, the lowest mean gates, seeded baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from recal.analysis.gates import GateRecorder, gated_blocks
from recal.analysis.pruning import FRACTIONS, lowest_gate_masks, masked, prune_curves, pruned_count, random_masks
from recal.analysis.validation import evaluate
from recal.models import BackboneConfig
from recal.tasks.classification import ClassificationTask


class TinyData:
    """A datamodule stand-in: two validation batches of four random 16×16 images."""

    def __init__(self, batches: int = 2, batch_size: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batches * batch_size, 3, 16, 16, generator=g)
        self.y = torch.arange(batches * batch_size) % 10
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        pass

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)


def tiny_task(name: str) -> ClassificationTask:
    """A CIFAR-ResNet-20 task whose gates are randomised (an untrained SRM gates everything at 0.5)."""
    torch.manual_seed(0)
    task = ClassificationTask(BackboneConfig(name=name), num_classes=10)
    for gate in gated_blocks(task).values():
        for p in gate.parameters():
            p.data.normal_(0, 0.5)
    return task.eval()


@pytest.mark.parametrize("channels", [7, 10, 16, 32, 64, 2048])
def test_each_fraction_zeroes_round_f_c_lowest_channels(channels: int) -> None:
    means = np.random.default_rng(channels).random(channels)
    for fraction in FRACTIONS:
        mask = lowest_gate_masks({"b": means}, fraction)["b"]
        k = round(fraction * channels)
        assert pruned_count(fraction, channels) == k
        assert int((mask == 0).sum()) == k
        zeroed, kept = means[mask.numpy() == 0], means[mask.numpy() == 1]
        assert k == 0 or zeroed.max() < kept.min()  # exactly the lowest mean gates


def test_random_masks_are_seeded_and_prune_as_many() -> None:
    channels = {"a": 16, "b": 64}
    first, again, other = (random_masks(channels, 0.3, s) for s in (0, 0, 1))
    for name, count in channels.items():
        assert int((first[name] == 0).sum()) == round(0.3 * count)
        assert torch.equal(first[name], again[name])
    assert any(not torch.equal(first[n], other[n]) for n in channels)


def test_masked_zeroes_the_chosen_channels_and_restores_the_masks() -> None:
    task = tiny_task("srm_cifar_resnet20")
    blocks = gated_blocks(task)
    masks = random_masks({n: g.channels for n, g in blocks.items()}, 0.5, 0)
    with torch.no_grad(), masked(blocks, masks):
        for name, gate in blocks.items():
            out = gate(torch.randn(2, gate.channels, 4, 4))  # the gated branch, before the residual addition
            dead = masks[name] == 0
            assert torch.count_nonzero(out[:, dead]) == 0 and torch.count_nonzero(out[:, ~dead]) > 0
    assert all(torch.equal(g.channel_mask, torch.ones(g.channels)) for g in blocks.values())


@pytest.mark.parametrize("name", ["se_cifar_resnet20", "srm_cifar_resnet20"])
def test_prune_curves_rows_and_the_unpruned_point(name: str) -> None:
    task, data = tiny_task(name), TinyData()
    rows, means = prune_curves(task, data, fractions=(0.0, 0.1, 0.5), seeds=(0, 1))
    assert [(r["method"], r["fraction"]) for r in rows] == [
        ("gate", 0.0), ("random", 0.0), ("random", 0.0), ("gate", 0.1), ("random", 0.1), ("random", 0.1),
        ("gate", 0.5), ("random", 0.5), ("random", 0.5)]
    widths = [16] * 3 + [32] * 3 + [64] * 3
    for r in rows:
        assert r["pruned_channels"] == sum(round(r["fraction"] * c) for c in widths)
        assert r["total_channels"] == sum(widths)
    # fraction 0 on the masked path (all ones) = the plain network
    assert rows[0]["acc1"] == evaluate(task, data, torch.device("cpu"))["acc1"]
    # the ranking is the mean gate over the validation set, recomputed here by hand
    seen: dict[str, list[Tensor]] = {}
    for block, gate in gated_blocks(task).items():
        gate.register_gate_hook(lambda m, g, block=block: seen.setdefault(block, []).append(g.detach()))
    with torch.no_grad():
        task(data.x)
    for block, values in seen.items():
        np.testing.assert_allclose(means[block], torch.cat(values).mean(0).numpy(), rtol=1e-5, atol=1e-6)
    # the f = 0.5 "gate" row is exactly an evaluation with the lowest-gate masks applied
    with masked(gated_blocks(task), lowest_gate_masks(means, 0.5)):
        assert rows[6]["acc1"] == evaluate(task, data, torch.device("cpu"))["acc1"]


def test_evaluate_passes_labels_to_the_recorder() -> None:
    task, data = tiny_task("se_cifar_resnet20"), TinyData()
    blocks = gated_blocks(task)
    recorder = GateRecorder(blocks, 10, [list(blocks)[-1]])
    evaluate(task, data, torch.device("cpu"), recorder=recorder, limit_batches=1)
    assert recorder.class_counts.sum() == 4 and all(s.samples == 4 for s in recorder.stats.values())
