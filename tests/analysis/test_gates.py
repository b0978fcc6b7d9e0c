"""Gate statistics: what the recorder accumulates equals what the gates computed; SK / split attention are not applicable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from recal.analysis.gates import (GateRecorder, block_label, gated_blocks, last_stage, not_applicable_reason,
                                  write_gate_outputs)
from recal.models import create_model
from recal.models.config import BackboneConfig
from tests.analysis.test_pruning import tiny_task


def test_block_names_and_the_last_stage() -> None:
    names = list(gated_blocks(create_model("se_cifar_resnet20", 10)))
    assert [block_label(n) for n in names] == [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3)]
    assert [block_label(n) for n in last_stage(names)] == ["layer3.0", "layer3.1", "layer3.2"]
    resnet = list(gated_blocks(create_model("srm_resnet18", 10)))
    assert [block_label(n) for n in last_stage(resnet)] == ["layer4.0", "layer4.1"]


@pytest.mark.parametrize("name, expected", [("sknet50", "selective kernel"), ("resnest50", "split attention"),
                                            ("cifar_resnet20", "no recalibration"), ("srm_cifar_resnet20", None)])
def test_gate_analyses_apply_to_gate_modules_only(name: str, expected: str | None) -> None:
    reason = not_applicable_reason(create_model(name, 10))
    assert reason is None if expected is None else ("not applicable" in reason and expected in reason)


@pytest.mark.parametrize("name", ["srm_cifar_resnet20", "ge_cifar_resnet20"])
def test_recorded_statistics_match_the_gates(name: str) -> None:
    task = tiny_task(name)
    blocks = gated_blocks(task)
    last = last_stage(list(blocks))
    raw: dict[str, list[Tensor]] = {}
    for block, gate in blocks.items():
        gate.register_gate_hook(lambda m, g, block=block: raw.setdefault(block, []).append(g.detach()))
    x, y = torch.randn(12, 3, 32, 32), torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 0, 1])
    recorder = GateRecorder(blocks, 10, last)
    with torch.no_grad(), recorder:
        for xb, yb in zip(x.split(6), y.split(6)):
            recorder.set_targets(yb)
            task(xb)
    for block in blocks:
        values = torch.cat(raw[block]).double()
        values = values.mean((2, 3)) if values.dim() == 4 else values
        stats = recorder.stats[block]
        assert stats.samples == 12 and stats.histogram.sum() == values.numel()
        summary = stats.summary()
        assert summary["mean"] == pytest.approx(values.mean().item(), abs=1e-9)
        assert summary["std"] == pytest.approx(values.std(unbiased=False).item(), abs=1e-6)
        assert summary["min"] == pytest.approx(values.min().item()) and summary["max"] == pytest.approx(values.max().item())
        # the histogram quantile is the lower order statistic, to the bin width (0.001)
        assert summary["p50"] == pytest.approx(values.flatten().quantile(0.5, interpolation="lower").item(), abs=1e-3)
        np.testing.assert_allclose(stats.channel_means(), values.mean(0).numpy(), rtol=1e-9)
        if block in last:
            per_class = recorder.class_means(block)
            for k in range(10):
                if (y == k).any():
                    np.testing.assert_allclose(per_class[k], values[y == k].mean(0).numpy(), rtol=1e-9)
                else:
                    assert np.isnan(per_class[k]).all()
        else:
            assert stats.class_sum is None


@pytest.mark.parametrize("name", ["srm_cifar_resnet20", "ge_cifar_resnet20"])
def test_identity_initialised_gates_are_recorded_as_applied(name: str, tmp_path) -> None:
    # amplitude 2: the gate the network applies is 1 at initialisation, recorded over [0, 2]
    model = BackboneConfig(name=name, identity_init=True).build(10).eval()
    blocks = gated_blocks(model)
    recorder = GateRecorder(blocks, 10, last_stage(list(blocks)))
    with torch.no_grad(), recorder:
        recorder.set_targets(torch.arange(4))
        model(torch.randn(4, 3, 32, 32))
    for stats in recorder.stats.values():
        summary = stats.summary()
        assert stats.top == 2.0 and stats.histogram.sum() == 4 * stats.channels
        assert summary["mean"] == summary["min"] == summary["max"] == 1.0
        assert summary["p05"] == summary["p95"] == pytest.approx(1.0, abs=2e-3)  # a bin of [0, 2] is 0.002 wide
        np.testing.assert_array_equal(stats.channel_means(), np.ones(stats.channels))
    rows = write_gate_outputs(recorder, list(blocks), [str(k) for k in range(10)], name, tmp_path)
    assert all(row["mean"] == 1.0 for row in rows) and "over [0, 2]" in (tmp_path / "gate_distributions.md").read_text()
