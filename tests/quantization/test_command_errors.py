"""``python -m recal.quantize`` refuses bad input in one ``error:`` line, exit status 2, no output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from recal import quantize
from tests.error_lines import the_error_line

SAVED = Path(__file__).resolve().parents[1] / "saved_checkpoints"


def exit_status(args: list[str]) -> int:
    """The command's exit status, whether its parser exits (a bad option type) or main returns it."""
    try:
        return quantize.main(args)
    except SystemExit as exit_:
        return int(exit_.code)


@pytest.mark.parametrize("args, names", [
    (["x.ckpt", "--calibration_batches", "0"], ["--calibration_batches 0", "at least 1"]),
    (["x.ckpt", "--variants", "[int8_gates, int4]"], ["'int4'", "float_gates", "qat"]),
    (["x.ckpt", "--variants", "[]"], ["--variants", "empty"]),
    (["x.ckpt", "--qat_epochs", "0"], ["--qat_epochs 0", "at least 1"]),
    (["x.ckpt", "--qat_batches", "0"], ["--qat_batches 0", "positive"]),
    (["x.ckpt", "--observer", "percentile"], ["--observer", "percentile"]),
    (["missing.ckpt"], ["missing.ckpt", "does not exist"]),
])
def test_bad_options_are_one_line(args: list[str], names: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert exit_status([*args, "--out", str(out)]) == 2
    the_error_line(capsys.readouterr().err, *names)
    assert not out.exists()


@pytest.mark.parametrize("name, task", [("style_transfer_bn_srm", "StyleTransferTask"),
                                        ("multi_domain_dsr_srm_cifar_resnet20", "MultiDomainTask")])
def test_a_checkpoint_of_another_task_is_refused_by_name(name: str, task: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert exit_status([str(SAVED / f"{name}.ckpt"), "--out", str(out)]) == 2
    the_error_line(capsys.readouterr().err, f"{name}.ckpt", task, "single-domain classification", "ClassificationTask")
    assert not out.exists()

