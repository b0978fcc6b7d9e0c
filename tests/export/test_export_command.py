"""``python -m recal.export``: a trained run folder end to end, and one-line refusals of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from recal import export
from tests.cli_runner import ROOT, run_cli, run_dirs
from tests.error_lines import the_error_line

pytestmark = pytest.mark.usefixtures("one_thread")

SAVED = ROOT / "tests" / "saved_checkpoints"


def test_a_trained_run_folder_exports_and_checks_in_onnxruntime(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    assert run_cli(["fit", "--config", str(ROOT / "configs" / "quickstart.yaml"), "--trainer.max_steps", "2",
                    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"], tmp_path / "fit") == 0
    (run,) = run_dirs(tmp_path / "fit")
    capsys.readouterr()
    out = tmp_path / "export"

    assert export.main([str(run), "--format", "onnx", "--check_batch_sizes", "[1, 3]", "--out", str(out)]) == 0

    stdout = capsys.readouterr().out.strip().splitlines()
    assert stdout[-1] == str(out)
    model = onnx.load(str(out / "srm_cifar_resnet20.onnx"))
    onnx.checker.check_model(model)
    (image,) = model.graph.input
    assert image.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in image.type.tensor_type.shape.dim[1:]] == [3, 32, 32]  # the CIFAR network's size
    report = json.loads((out / "export.json").read_text())
    assert report["passed"] and report["model"] == "srm_cifar_resnet20"
    assert [c["batch_size"] for c in report["checks"]] == [1, 3]
    assert all(c["vs_fused"] <= 1e-4 and c["vs_unfused"] <= 1e-4 for c in report["checks"])
    assert "PASS" in (out / "export.md").read_text() and any(line.startswith("PASS") for line in stdout)


@pytest.mark.parametrize("name, names", [
    ("style_transfer_bn_srm", ["StyleTransferTask", "not a classification task", "ClassificationTask"]),
    ("multi_domain_dsr_srm_cifar_resnet20", ["MultiDomainTask", "domain_specific_recalibration", "domain id"]),
])
def test_a_checkpoint_of_another_task_is_refused_by_name(name: str, names: list[str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert export.main([str(SAVED / f"{name}.ckpt"), "--out", str(out)]) == 2
    the_error_line(capsys.readouterr().err, f"{name}.ckpt", *names)
    assert not out.exists()  # the empty output folder is removed


@pytest.mark.parametrize("args, names", [
    (["missing.ckpt"], ["missing.ckpt", "does not exist"]),
    (["missing_run_folder"], ["missing_run_folder", "does not exist"]),
    (["x.ckpt", "--format", "tflite"], ["--format", "tflite", "onnx"]),
    (["x.ckpt", "--input_size", "big"], ["--input_size", "big"]),
    ([str(SAVED / "srm_cifar_resnet20.ckpt"), "--input_size", "0"], ["input_size=0", "positive"]),
    ([str(SAVED / "srm_cifar_resnet20.ckpt"), "--tolerance", "-1"], ["--tolerance=-1", "non-negative"]),
])
def test_bad_arguments_are_one_error_line_and_exit_2(args: list[str], names: list[str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:  # the parser exits; the work returns 2
        raise SystemExit(export.main([*args, "--out", str(tmp_path / "out")]))
    assert exited.value.code == 2
    the_error_line(capsys.readouterr().err, *names)
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_no_checkpoint_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    notes = tmp_path / "notes.ckpt"
    notes.write_text("not a checkpoint")
    assert export.main([str(notes), "--out", str(tmp_path / "out")]) == 2
    the_error_line(capsys.readouterr().err, "cannot read checkpoint", "notes.ckpt")


def test_bad_check_batch_sizes_are_refused_before_rebuilding(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert export.main([str(SAVED / "srm_cifar_resnet20.ckpt"), "--check_batch_sizes", "[0]",
                        "--config", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(tmp_path / "o")]) == 2
    the_error_line(capsys.readouterr().err, "check_batch_sizes", "[0]", "positive")
