"""One report of state-dict differences (recal/tasks/state_dict_differences.py) for both loads that check one.

Resuming a run (``check_checkpoint_fits``) and initialising a backbone from a weights file
(``load_backbone_weights``) must phrase missing keys, unexpected keys and shape mismatches
alike: both go through ``state_dict_differences``, which alone lists keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from recal.errors import CheckpointMismatchError
from recal.models import create_model
from recal.tasks import checkpoints, state_dict_differences as shared, weights
from recal.tasks.checkpoints import check_checkpoint_fits
from recal.tasks.state_dict_differences import state_dict_differences
from recal.tasks.weights import GATE_NOTE, load_backbone_weights


def _tensors(**shapes: tuple[int, ...]) -> dict[str, torch.Tensor]:
    return {name: torch.zeros(shape) for name, shape in shapes.items()}


@pytest.fixture
def plain_resnet_file(tmp_path: Path) -> Path:
    path = tmp_path / "cifar_resnet20.pth"
    torch.save(create_model("cifar_resnet20", 10).state_dict(), path)
    return path


def test_phrases_name_counts_and_the_first_keys() -> None:
    own = _tensors(a=(1,), b=(1,), c=(1,), d=(1,), w=(2, 3), v=(4,), u=(5,))
    theirs = _tensors(w=(3, 2), v=(5,), u=(6,), x=(1,))
    assert state_dict_differences(own, theirs) == [
        "4 key(s) missing from the file: a, b, c … (+1)",
        "1 unexpected key(s): x",
        "3 shape mismatch(es): w: file (3, 2) vs model (2, 3), v: file (5,) vs model (4,) … (+1)",
    ]
    assert state_dict_differences(own, dict(own)) == []


def test_the_missing_note_sees_the_missing_keys_and_follows_their_count() -> None:
    seen = []
    note = lambda missing: seen.append(missing) or " (why)"  # noqa: E731
    assert state_dict_differences(_tensors(a=(1,), b=(1,)), _tensors(b=(1,)), missing_note=note) == [
        "1 key(s) missing from the file (why): a"]
    assert seen == [["a"]]
    assert state_dict_differences(_tensors(a=(1,)), _tensors(a=(1,), z=(1,)), missing_note=note) == [
        "1 unexpected key(s): z"]
    assert seen == [["a"]]  # not asked when nothing is missing


def test_a_checkpoint_that_does_not_fit_says_what_it_was_saved_from() -> None:
    checkpoint = {"state_dict": _tensors(w=(3,), extra=(1,)),
                  "hyper_parameters": {"backbone": {"name": "resnet18"}, "num_classes": 10}}
    with pytest.raises(CheckpointMismatchError) as info:
        check_checkpoint_fits(_tensors(w=(2,), b=(1,)), checkpoint, "run/last.ckpt", "resnet50 with 47 classes")
    assert str(info.value) == (
        "checkpoint run/last.ckpt does not fit resnet50 with 47 classes (it was saved from resnet18 with 10 classes): "
        "1 key(s) missing from the file: b; 1 unexpected key(s): extra; 1 shape mismatch(es): w: file (3,) vs model (2,)")


def test_a_plain_resnet_file_for_a_gated_resnet_points_to_allow_missing_gates(plain_resnet_file: Path) -> None:
    with pytest.raises(CheckpointMismatchError) as info:
        load_backbone_weights(create_model("srm_cifar_resnet20", 10), plain_resnet_file, model_name="srm_cifar_resnet20")
    assert str(info.value).startswith(
        f"weights file {plain_resnet_file} does not fit srm_cifar_resnet20: 63 key(s) missing from the file"
        f"{GATE_NOTE}: layer1.0.gate.")
    assert load_backbone_weights(create_model("srm_cifar_resnet20", 10), plain_resnet_file, allow_missing_gates=True)


def test_other_missing_keys_get_no_note(tmp_path: Path) -> None:
    path = tmp_path / "partial.pth"
    state = create_model("srm_cifar_resnet20", 10).state_dict()
    torch.save({k: v for k, v in state.items() if k != "conv1.weight"}, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_backbone_weights(create_model("srm_cifar_resnet20", 10), path, model_name="srm_cifar_resnet20")
    assert str(info.value) == (
        f"weights file {path} does not fit srm_cifar_resnet20: 1 key(s) missing from the file: conv1.weight")


def test_both_loads_report_through_the_one_function(monkeypatch, plain_resnet_file: Path) -> None:
    assert checkpoints.state_dict_differences is shared.state_dict_differences
    assert weights.state_dict_differences is shared.state_dict_differences
    assert not hasattr(checkpoints, "_listed") and not hasattr(weights, "_listed")
    callers = []

    def spy(caller: str):
        def report(*args, **kwargs) -> list[str]:
            callers.append(caller)
            return shared.state_dict_differences(*args, **kwargs)
        return report

    monkeypatch.setattr(checkpoints, "state_dict_differences", spy("checkpoints"))
    monkeypatch.setattr(weights, "state_dict_differences", spy("weights"))
    with pytest.raises(CheckpointMismatchError, match="1 unexpected key"):
        check_checkpoint_fits(_tensors(), {"state_dict": _tensors(x=(1,))}, None, "a model")
    with pytest.raises(CheckpointMismatchError, match=re.escape(GATE_NOTE)):
        load_backbone_weights(create_model("srm_cifar_resnet20", 10), plain_resnet_file)
    assert callers == ["checkpoints", "weights"]
