"""Checkpoints written by earlier code keep loading and computing what they computed.

The fixtures in ``tests/saved_checkpoints/`` were written by ``python -m
tests.saved_checkpoints.write`` before the layers/networks redesign: a tiny checkpoint of each
task and gate family, single gate modules and blocks, and what each computed then.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from recal.models import create_model
from recal.tasks.weights import LoadedWeights, load_backbone_weights
from tests.cli_runner import run_cli
from tests.saved_checkpoints.layers import build, run
from tests.saved_checkpoints.networks import network_outputs, task_from_checkpoint
from tests.saved_checkpoints.write import HERE, data_roots, run_arguments

pytestmark = pytest.mark.usefixtures("one_thread")

REFERENCES = torch.load(HERE / "references.pt", weights_only=True)
LAYERS = torch.load(HERE / "layers.pt", weights_only=True)
CLOSE = dict(rtol=1e-5, atol=1e-5)  # float32 rounding: thread count changes the order of convolution sums


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return data_roots(tmp_path_factory.mktemp("data"))


def saved(name: str) -> dict:
    return torch.load(HERE / f"{name}.ckpt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", REFERENCES)
def test_saved_checkpoint_rebuilds_its_task_and_computes_what_it_computed(name: str) -> None:
    reference = REFERENCES[name]
    outputs = network_outputs(task_from_checkpoint(saved(name)), reference["input"])
    assert outputs.keys() == {k for k in reference if k not in ("input", "val_loss")}
    for key, value in outputs.items():
        torch.testing.assert_close(value, reference[key], **CLOSE)


@pytest.mark.parametrize("name", REFERENCES)
def test_saved_checkpoint_validates_through_ckpt_path_to_the_same_loss(name: str, roots, tmp_path: Path) -> None:
    arguments = run_arguments(roots)[name]
    assert run_cli(["validate", *arguments, "--trainer.limit_val_batches", "1", "--ckpt_path",
                    str(HERE / f"{name}.ckpt")], tmp_path) == 0
    (metrics,) = tmp_path.glob("**/validate/version_0/metrics.csv")
    with open(metrics, newline="") as f:
        losses = [float(row["val/loss"]) for row in csv.DictReader(f) if row.get("val/loss")]
    assert losses == [pytest.approx(REFERENCES[name]["val_loss"], rel=1e-6)]


@pytest.mark.parametrize("name", [n for n, r in REFERENCES.items() if "features" in r])
def test_saved_checkpoint_initialises_a_backbone_through_the_weights_option(name: str) -> None:
    checkpoint = saved(name)
    backbone = checkpoint["hyper_parameters"]["backbone"]
    model = create_model(**{k: v for k, v in backbone.items() if v is not None}, num_classes=5).eval()
    assert load_backbone_weights(model, HERE / f"{name}.ckpt") == LoadedWeights([], [])
    with torch.no_grad():
        features = model.forward_features(REFERENCES[name]["input"])
    torch.testing.assert_close(features, REFERENCES[name]["features"], **CLOSE)


@pytest.mark.parametrize("name", LAYERS)
def test_saved_layer_loads_strictly_and_computes_what_it_computed(name: str) -> None:
    reference = LAYERS[name]
    module = build(reference["spec"])
    module.load_state_dict(reference["state_dict"])
    with torch.no_grad():
        output = run(module.eval(), reference["spec"], reference["input"], reference["shortcut"])
    torch.testing.assert_close(output, reference["output"], **CLOSE)
