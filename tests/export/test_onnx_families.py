"""Every recalibration family exports to ONNX (fused, dynamic batch) and onnxruntime agrees with PyTorch."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from recal.errors import InvalidOptionError, UserError
from recal.deploy.onnx import BATCH_AXIS, INPUT_NAME, TOLERANCE, BatchCheck, ExportMismatchError, OnnxExport, \
    export_onnx, mismatch_message
from tests.export.networks import FAMILIES, family_network

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("family", FAMILIES)
def test_onnxruntime_equals_pytorch_at_two_batch_sizes(family: str, tmp_path: Path) -> None:
    model, size = family_network(family)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = export_onnx(model, tmp_path / f"{family}.onnx", size, batch_sizes=(1, 4))

    assert [check.batch_size for check in result.checks] == [1, 4]
    for check in result.checks:
        assert check.vs_fused <= TOLERANCE and check.vs_unfused <= TOLERANCE, (family, check)
        assert check.largest_logit > 0.05  # the logits are not all ~0, so the bound means something
    assert result.passed
    graph = onnx.load(str(result.path)).graph
    (image,) = [i for i in graph.input if i.name == INPUT_NAME]
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param == BATCH_AXIS and [d.dim_value for d in dims[1:]] == [3, size, size]
    assert "BatchNormalization" not in {node.op_type for node in graph.node}  # nothing left for the runtime to normalise
    # the model given is left as it was: eval mode, same weights and statistics
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_difference_above_the_tolerance_is_one_line_naming_the_batch_and_the_bound() -> None:
    result = OnnxExport(Path("m.onnx"), (BATCH_AXIS, 3, 32, 32), 20, 1.0, 1e-4,
                        [BatchCheck(1, 2e-5, 3e-5, 0.5), BatchCheck(4, 2e-4, 1e-5, 0.5)])
    assert not result.passed and result.max_difference == 2e-4 and result.worst.batch_size == 4
    message = mismatch_message(result)
    assert "\n" not in message and "2.00e-04 at batch size 4" in message and "at most 1.00e-04" in message
    assert issubclass(ExportMismatchError, UserError) and "FAIL" in result.markdown("m")


def test_the_tolerance_is_relative_to_logits_larger_than_one() -> None:
    check = BatchCheck(1, 1.5e-3, 1e-3, 20.0)  # 7.5e-5 relative: float32 rounding at this scale
    assert check.bound(1e-4) == pytest.approx(2e-3)
    assert OnnxExport(Path("m.onnx"), (BATCH_AXIS, 3, 32, 32), 20, 1.0, 1e-4, [check]).passed
    assert not OnnxExport(Path("m.onnx"), (BATCH_AXIS, 3, 32, 32), 20, 1.0, 5e-5, [check]).passed


@pytest.mark.parametrize("bad", [dict(input_size=0), dict(input_size=(32,)), dict(batch_sizes=()),
                                 dict(batch_sizes=(1, 0))])
def test_bad_sizes_are_refused_before_exporting(bad: dict, tmp_path: Path) -> None:
    arguments = {"input_size": 32, **bad}
    with pytest.raises(InvalidOptionError, match="expected"):
        export_onnx(torch.nn.Identity(), tmp_path / "x.onnx", **arguments)
    assert not (tmp_path / "x.onnx").exists()
