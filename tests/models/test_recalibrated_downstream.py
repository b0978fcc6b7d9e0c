"""Everything downstream of the gate contract works on a recalibrated torchvision or timm network.

Pruning (fraction 0 is a plain Lightning validation), gate statistics, parameter and
multiply-add counts, inference fusion and the no-weight-decay group see the gates that
``recalibrate`` put into a network recal did not build, through the same gate protocol.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from recal.analysis.complexity import backbone_row, cfc_macs
from recal.analysis.gates import GateRecorder, gated_blocks
from recal.analysis.pruning import prune_curves
from recal.analysis.validation import evaluate
from recal.layers import SRM
from recal.models import BackboneConfig, fuse, no_weight_decay_parameters
from recal.tasks.classification import ClassificationTask


class DigitsLike:
    """A datamodule stand-in: two validation batches of four seeded 32×32 images, ten classes."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(8, 3, 32, 32, generator=g), torch.arange(8) % 10

    def setup(self, stage: str) -> None:
        pass

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=4)


def recalibrated_task(name: str) -> ClassificationTask:
    """A task on ``name`` with SRM gates whose parameters are randomised (untrained, SRM gates all at 0.5)."""
    torch.manual_seed(0)
    task = ClassificationTask(BackboneConfig(name=name, recalibration="srm"), num_classes=10)
    for gate in gated_blocks(task).values():
        for p in gate.parameters():
            p.data.normal_(0, 0.5)
    return task.eval()


def test_pruning_nothing_is_a_plain_validation_of_a_recalibrated_mobilenet_v2() -> None:
    task, data = recalibrated_task("torchvision.mobilenet_v2"), DigitsLike()
    blocks = gated_blocks(task)
    assert len(blocks) == 17
    rows, means = prune_curves(task, data, fractions=(0.0, 0.5), seeds=(0,))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (validated,) = trainer.validate(task, data.val_dataloader(), verbose=False)
    assert rows[0]["fraction"] == 0.0 and rows[0]["pruned_channels"] == 0
    assert rows[0]["acc1"] == pytest.approx(validated["val/acc1"], abs=1e-7)
    assert rows[0]["acc1"] == evaluate(task, data, torch.device("cpu"))["acc1"]
    half = [r for r in rows if r["fraction"] == 0.5 and r["method"] == "gate"][0]
    assert half["pruned_channels"] == sum(round(0.5 * g.channels) for g in blocks.values())
    assert set(means) == set(blocks)


@pytest.mark.parametrize("name", ["torchvision.mobilenet_v2", "timm.efficientnet_b0"])
def test_gate_statistics_see_every_inserted_gate(name: str) -> None:
    task, data = recalibrated_task(name), DigitsLike()
    blocks = gated_blocks(task)
    recorder = GateRecorder(blocks, 10, [list(blocks)[-1]])
    evaluate(task, data, torch.device("cpu"), recorder=recorder)
    assert set(recorder.stats) == set(blocks) and all(s.samples == 8 for s in recorder.stats.values())
    assert all(0 < s.summary()["mean"] < 1 for s in recorder.stats.values())


def test_parameters_and_multiply_adds_count_the_inserted_gates() -> None:
    plain = backbone_row(BackboneConfig(name="torchvision.mobilenet_v2"), 1000, "test", full=False)
    gated = backbone_row(BackboneConfig(name="torchvision.mobilenet_v2", recalibration="srm"), 1000, "test",
                         full=False)
    model = BackboneConfig(name="torchvision.mobilenet_v2", recalibration="srm").build(1000)
    srm = [m for m in model.modules() if isinstance(m, SRM)]
    assert gated["params"] - plain["params"] == sum(4 * m.channels for m in srm)  # CFC 2C + BN 2C each
    assert gated["macs"] - plain["macs"] == cfc_macs(model) == sum(2 * m.channels for m in srm)


@pytest.mark.parametrize("name", ["torchvision.resnet18", "torchvision.mobilenet_v2", "timm.resnet18"])
def test_fusion_merges_the_conv_bn_pairs_and_keeps_the_output(name: str) -> None:
    model = recalibrated_task(name).model.double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    fused = fuse(model)
    norms = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    assert sum(type(m) is nn.BatchNorm2d for m in fused.modules()) < norms / 4
    assert not any(isinstance(m, SRM) for m in fused.modules())  # every SRM became its affine form
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model.eval()(x), rtol=1e-9, atol=1e-9)


def test_the_no_weight_decay_group_holds_the_inserted_srm_parameters() -> None:
    model = BackboneConfig(name="timm.efficientnet_b0", recalibration="srm").build(10)
    chosen = {id(p) for p in no_weight_decay_parameters(model, "srm")}
    srm = [m for m in model.modules() if isinstance(m, SRM)]
    assert len(srm) == 16
    assert chosen == {id(p) for m in srm for p in (m.cfc.weight, m.bn.weight, m.bn.bias)}
