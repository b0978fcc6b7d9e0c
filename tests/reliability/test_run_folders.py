"""Run folders tell the truth: last.ckpt is the last state, earlier runs are never written into,
a resume continues its own folder, and every subcommand's files land where the README says."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from tests.cli_runner import checkpoint, read_metrics, run_cli, run_dirs
from tests.error_lines import the_error_line

# Three epochs of 3 steps; mode min on val/acc1 makes an early epoch the "best".
FIT = ["fit", "--config", "quickstart.yaml", "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "3",
       "--trainer.limit_val_batches", "2", "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"]
WORST_IS_BEST = ["--checkpoint.mode", "min"]


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _error(capsys: pytest.CaptureFixture) -> str:
    return the_error_line(capsys.readouterr().err)


def _fails(args: list[str], out: Path) -> int:
    try:
        return run_cli(args, out)
    except SystemExit as exit_:
        return int(exit_.code)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-epoch run whose best.ckpt (mode min) is not its last epoch."""
    out = tmp_path_factory.mktemp("finished")
    final = out.parent / f"{out.name}_final_weights.pt"
    assert run_cli([*FIT, *WORST_IS_BEST, "--trainer.callbacks+=tests.reliability.callbacks.FinalWeights",
                    "--trainer.callbacks.init_args.path", str(final)], out) == 0
    (run,) = run_dirs(out)
    return run


def test_last_ckpt_is_the_final_state_when_the_best_epoch_came_earlier(finished: Path) -> None:
    last, best = checkpoint(finished / "checkpoints" / "last.ckpt"), checkpoint(finished / "checkpoints" / "best.ckpt")
    assert last["global_step"] == 9 and last["epoch"] == 2
    assert best["global_step"] < 9  # the min of val/acc1 came early
    accuracies = [(int(r["step"]), float(r["val/acc1"])) for r in read_metrics(finished) if r.get("val/acc1")]
    assert min(accuracies, key=lambda a: a[1])[0] + 1 == best["global_step"]
    # last.ckpt's weights are the weights the run ended with
    out = finished.parent.parent
    final = torch.load(out.parent / f"{out.name}_final_weights.pt", weights_only=True)
    assert final.keys() == last["state_dict"].keys()
    assert all(torch.equal(final[k], last["state_dict"][k]) for k in final)
    assert not torch.equal(last["state_dict"]["model.fc.weight"], best["state_dict"]["model.fc.weight"])


def test_validate_test_and_predict_write_beside_the_run(finished: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = str(finished / "checkpoints" / "last.ckpt")
    common = ["--config", "quickstart.yaml", "--ckpt_path", ckpt, "--trainer.limit_val_batches", "2",
              "--trainer.limit_test_batches", "2", "--trainer.limit_predict_batches", "2"]
    before = _digests(finished)
    for subcommand in ("validate", "test", "test", "predict"):
        assert run_cli([subcommand, *common], finished.parent.parent) == 0
    out = capsys.readouterr()
    assert "test/acc1" in out.out  # the metric table
    assert sorted(p.relative_to(finished).as_posix() for p in finished.glob("*/version_*")) == [
        "predict/version_0", "test/version_0", "test/version_1", "validate/version_0"]
    validated = read_metrics(finished / "validate" / "version_0")
    last_logged = [r["val/acc1"] for r in read_metrics(finished) if r.get("val/acc1")][-1]
    assert validated[-1]["val/acc1"] == last_logged  # last.ckpt is the final state, validated again
    assert read_metrics(finished / "test" / "version_0")[-1]["test/acc1"]
    predictions = (finished / "predict" / "version_0" / "predictions.csv").read_text().splitlines()
    assert predictions[0].startswith("index,image,class_1,prob_1") and predictions[1].split(",")[1] == "test[0]"
    assert len(predictions) == 1 + 2 * 32
    assert {k: v for k, v in _digests(finished).items() if k in before} == before  # the training run untouched


def test_ckpt_path_last_resumes_the_newest_run_of_this_config(tmp_path: Path, capsys) -> None:
    assert _fails([*FIT, "--ckpt_path", "last"], tmp_path) == 2
    assert "no version_N folder under" in _error(capsys)
    assert run_cli([*FIT, "--trainer.max_epochs", "1"], tmp_path) == 0
    assert run_cli([*FIT, "--trainer.max_epochs", "1"], tmp_path) == 0
    (first, second) = run_dirs(tmp_path)
    assert run_cli([*FIT, "--trainer.max_epochs", "2", "--ckpt_path", "last"], tmp_path) == 0
    assert run_dirs(tmp_path) == [first, second]
    assert checkpoint(second / "checkpoints" / "last.ckpt")["global_step"] == 6
    assert checkpoint(first / "checkpoints" / "last.ckpt")["global_step"] == 3
    # the resumed run's config.yaml says max_epochs 2; the one it replaced is kept
    assert "max_epochs: 2" in (second / "config.yaml").read_text()
    assert "max_epochs: 1" in (second / "config.previous-1.yaml").read_text()


def test_a_resume_keeps_earlier_rows_and_moves_later_ones_aside(tmp_path: Path) -> None:
    import shutil

    assert run_cli([*FIT, "--trainer.max_epochs", "1"], tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    early = run / "checkpoints" / "epoch1.ckpt"  # a state the run will move past
    shutil.copy(run / "checkpoints" / "last.ckpt", early)
    assert run_cli([*FIT, "--trainer.max_epochs", "2", "--ckpt_path", "last"], tmp_path) == 0
    assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 6
    extra = b",0.05,0.05,6,,,,,,\r\n"  # a row logged after the last checkpoint (a crash between checkpoints)
    with open(run / "metrics.csv", "ab") as f:
        f.write(extra)
    lines = (run / "metrics.csv").read_bytes().splitlines(keepends=True)
    before_3 = [line for line in lines[1:] if int(line.split(b",")[3]) < 3]
    after_3 = [line for line in lines[1:] if int(line.split(b",")[3]) >= 3]
    # back to the end of epoch 1: epochs 2's rows and checkpoints are set aside, never deleted
    assert run_cli([*FIT, "--trainer.max_epochs", "3", "--ckpt_path", str(early)], tmp_path) == 0
    after = (run / "metrics.csv").read_bytes().splitlines(keepends=True)
    assert after[0] == lines[0] and after[1:1 + len(before_3)] == before_3  # byte for byte
    assert (run / "metrics.discarded-1.csv").read_bytes() == lines[0] + b"".join(after_3)
    assert extra in after_3
    assert checkpoint(run / "checkpoints" / "last.discarded-1.ckpt")["global_step"] == 6
    assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 9
    assert [int(r["step"]) for r in read_metrics(run) if r.get("train/loss_step")] == list(range(9))


def test_a_resume_with_other_options_is_refused_and_writes_nothing(finished: Path, capsys) -> None:
    before = _digests(finished)
    ckpt = str(finished / "checkpoints" / "last.ckpt")
    assert _fails([*FIT, *WORST_IS_BEST, "--ckpt_path", ckpt, "--model.init_args.label_smoothing", "0.1",
                   "--trainer.max_epochs", "4"], finished.parent.parent) == 2
    line = _error(capsys)
    assert "label_smoothing: 0.0 → 0.1" in line and "max_epochs" in line and str(finished) in line
    assert _digests(finished) == before


def test_an_explicit_version_of_a_finished_run_is_refused_byte_for_byte(finished: Path, capsys) -> None:
    before = _digests(finished)
    assert _fails([*FIT, "--trainer.logger.init_args.version", finished.name], finished.parent.parent) == 2
    line = _error(capsys)
    assert str(finished) in line and "already holds" in line
    assert _digests(finished) == before


def test_default_root_dir_and_no_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    assert run_cli([*FIT, "--trainer.max_epochs", "1", "--trainer.logger", "false"], root) == 0
    run = root / "quickstart" / "version_0"
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == [
        "checkpoints/best.ckpt", "checkpoints/last.ckpt", "config.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]  # nothing in the working folder


def test_learning_rate_monitor_switches_off(tmp_path: Path) -> None:
    assert run_cli([*FIT, "--trainer.max_epochs", "1", "--lr_monitor.enabled", "false"], tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    assert not [k for k in read_metrics(run)[0] if k.startswith("lr-")]


def test_print_config_shows_the_run_name(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", "srm_r50.yaml", "--print_config"], Path("."))
    assert "name: srm_r50" in capsys.readouterr().out


def test_an_unwritable_run_folder_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "file.txt").write_text("")
    assert _fails([*FIT, "--trainer.max_epochs", "1"], tmp_path / "file.txt" / "sub") == 2
    line = _error(capsys)
    assert "run folder" in line and "regular file" in line and "file.txt" in line


def test_tensorboard_logger_works_or_says_how_to_install_it(tmp_path: Path, capsys) -> None:
    args = [*FIT, "--trainer.max_epochs", "1", "--trainer.logger", "TensorBoardLogger"]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert _fails(args, tmp_path) == 2
        assert "pip install -e '.[tensorboard]'" in _error(capsys)
        return
    assert run_cli(args, tmp_path) == 0
    assert list((tmp_path / "quickstart" / "version_0").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("content, says", [
    (None, "does not exist"), (b"", "is empty"), (b"PK\x03\x04truncated", "cannot be read"),
    ("state_dict", "not a Lightning checkpoint"),
])
def test_a_bad_ckpt_path_file_is_one_line(tmp_path: Path, capsys, content, says) -> None:
    path = tmp_path / "given.ckpt"
    if content == "state_dict":
        torch.save({"conv.weight": torch.zeros(1)}, path)
    elif content is not None:
        path.write_bytes(content)
    assert _fails([*FIT, "--ckpt_path", str(path)], tmp_path / "runs") == 2
    line = _error(capsys)
    assert str(path) in line and says in line
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_of_another_task_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "style.ckpt"
    torch.save({"state_dict": {}, "global_step": 3, "epoch": 0,
                "hyper_parameters": {"_class_path": "recal.tasks.style_transfer.StyleTransferTask", "norm": "in"}},
               path)
    assert _fails(["test", "--config", "quickstart.yaml", "--ckpt_path", str(path)], tmp_path) == 2
    line = _error(capsys)
    assert "StyleTransferTask" in line and "ClassificationTask" in line and str(path) in line


def test_an_internal_error_keeps_its_traceback(tmp_path: Path, monkeypatch) -> None:
    from recal.models import cifar  # the quickstart's network

    def broken(self, x):
        raise ZeroDivisionError("a bug, not a user error")

    monkeypatch.setattr(cifar.CifarResNet, "forward", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        run_cli([*FIT, "--trainer.max_epochs", "1"], tmp_path)
