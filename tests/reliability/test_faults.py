"""Faults: signals mid-epoch, non-finite losses, failures during set-up, partial writes.

A signal writes ``interrupted.ckpt`` and ``last.ckpt`` and a resume from it continues the
same run folder exactly; nothing else writes ``interrupted.ckpt``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cli_runner import QUIET, ROOT, checkpoint, read_metrics, run_cli, run_dirs

COMMON = ["fit", "--config", "quickstart.yaml", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "12",
          "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0"]
# Two epochs of 6 steps, a validation after each, every training step logged.
TWO_EPOCHS = ["fit", "--config", "quickstart.yaml", "--trainer.max_epochs", "2", "--trainer.limit_train_batches",
              "6", "--trainer.limit_val_batches", "2", "--trainer.num_sanity_val_steps", "0",
              "--trainer.log_every_n_steps", "1", "--trainer.callbacks+=tests.reliability.callbacks.StepMarker",
              "--trainer.callbacks+=tests.reliability.callbacks.SlowSteps"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint(path)["state_dict"]


def _start(args: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "cli.py"), *args, "--trainer.default_root_dir", str(out), *QUIET]
    return subprocess.Popen(command, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _stop_at(process: subprocess.Popen, step: int, signum: int) -> str:
    for line in process.stdout:
        if line.strip() == f"STEP {step}":
            process.send_signal(signum)
            break
    _, err = process.communicate(timeout=300)
    return err


def _same_weights(a: Path, b: Path) -> list[str]:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return [k for k in wa if not torch.equal(wa[k], wb[k])]


def test_sigterm_then_resume_is_one_run_equal_to_an_uninterrupted_one(tmp_path: Path) -> None:
    for name in ("straight", "stopped"):
        (tmp_path / name).mkdir()
    straight = _start(TWO_EPOCHS, tmp_path / "straight")
    stopped = _start(TWO_EPOCHS, tmp_path / "stopped")
    err = _stop_at(stopped, 8, signal.SIGTERM)  # mid-epoch 2
    assert stopped.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    (run,) = run_dirs(tmp_path / "stopped")
    interrupted = run / "checkpoints" / "interrupted.ckpt"
    stop_step = checkpoint(interrupted)["global_step"]
    assert 8 <= stop_step < 12
    # last.ckpt is the last state: the interrupted one
    assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == stop_step
    assert not _same_weights(interrupted, run / "checkpoints" / "last.ckpt")

    resumed = _start([*TWO_EPOCHS, "--ckpt_path", "last"], tmp_path / "stopped")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    straight.communicate(timeout=300)
    assert straight.returncode == 0
    (a,), (b,) = run_dirs(tmp_path / "straight"), run_dirs(tmp_path / "stopped")
    assert b == run  # one run folder, continued
    assert not _same_weights(a / "checkpoints" / "last.ckpt", b / "checkpoints" / "last.ckpt")
    assert checkpoint(b / "checkpoints" / "last.ckpt")["global_step"] == 12
    # every step logged once, with the values of the uninterrupted run; the epoch aggregates of
    # the interrupted epoch (train/loss_epoch, train/samples) cover only its resumed part
    # (Lightning does not checkpoint the running aggregates), the README says so
    partial = ("train/loss_epoch", "train/samples")
    strip = lambda rows: [{k: ("~" if k in partial and r["epoch"] == "1" else v) for k, v in r.items()} for r in rows]
    assert strip(read_metrics(b)) == strip(read_metrics(a))
    assert [r for r in read_metrics(b) if r["epoch"] == "0"] == [r for r in read_metrics(a) if r["epoch"] == "0"]
    steps = [int(r["step"]) for r in read_metrics(b) if r.get("train/loss_step")]
    assert steps == list(range(12))
    # best.ckpt: the best validation over the whole run, as in the uninterrupted run
    best_a, best_b = checkpoint(a / "checkpoints" / "best.ckpt"), checkpoint(b / "checkpoints" / "best.ckpt")
    assert best_a["global_step"] == best_b["global_step"]
    assert not _same_weights(a / "checkpoints" / "best.ckpt", b / "checkpoints" / "best.ckpt")
    accuracies = [float(r["val/acc1"]) for r in read_metrics(b) if r.get("val/acc1")]
    (state,) = [s for k, s in best_b["callbacks"].items() if k.startswith("BestCheckpoint")]
    assert float(state["best_model_score"]) == max(accuracies)
    assert not (b / "checkpoints" / "interrupted.ckpt").exists()  # the finished run is no longer interrupted


def test_ctrl_c_finishes_the_batch_saves_and_exits_130(tmp_path: Path) -> None:
    stopped = _start(TWO_EPOCHS, tmp_path)
    err = _stop_at(stopped, 3, signal.SIGINT)
    assert stopped.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "stopped by SIGINT" in err
    (run,) = run_dirs(tmp_path)
    assert 3 <= checkpoint(run / "checkpoints" / "interrupted.ckpt")["global_step"] < 6


def test_a_non_finite_loss_stops_before_its_step_and_names_the_last_good_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = run_cli([*COMMON, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "4",
                  "--trainer.callbacks+=tests.reliability.callbacks.InjectNaN",
                  "--trainer.callbacks.init_args.at_step", "6"], tmp_path)
    assert rc == 2
    (line,) = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    (run,) = run_dirs(tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    assert "non-finite" in line and "nan" in line and "step 6" in line and f"{last} (step 4)" in line
    assert checkpoint(last)["global_step"] == 4  # the end of the first epoch, before the NaN
    assert not (run / "checkpoints" / "interrupted.ckpt").exists()
    for path in (run / "checkpoints").glob("*.ckpt"):
        assert all(torch.isfinite(v).all() for v in _weights(path).values() if v.is_floating_point())


def test_a_nan_in_the_first_epoch_says_no_checkpoint_exists(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = run_cli([*COMMON, "--trainer.limit_train_batches", "4",
                  "--trainer.callbacks+=tests.reliability.callbacks.InjectNaN",
                  "--trainer.callbacks.init_args.at_step", "1"], tmp_path)
    assert rc == 2
    (line,) = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert "step 1" in line and "no checkpoint was written" in line
    # nothing was logged (log_every_n_steps 10) and nothing saved: the folder held nothing to keep
    assert not list(tmp_path.rglob("*.ckpt")) and not run_dirs(tmp_path)


def test_a_config_error_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli([*COMMON, "--trainer.max_epochs", "two"], tmp_path)
    assert exit_.value.code == 2
    assert not list(tmp_path.rglob("*"))


def test_a_data_error_leaves_no_checkpoint_and_no_empty_version_folder(tmp_path: Path) -> None:
    from tests.fixtures import write_corrupt_image, write_image_folder

    root = write_image_folder(tmp_path / "images", classes=2, per_class=2, size=(36, 36))
    for image in (root / "train").rglob("*.JPEG"):
        write_corrupt_image(image)
    args = ["fit", "--config", "srm_r50.yaml", "--model.backbone.name", "srm_resnet18", "--data.root", str(root),
            "--data.image_size", "32", "--data.resize_size", "36", "--data.batch_size", "2", "--data.num_workers", "0",
            "--data.num_classes", "2", "--trainer.accelerator", "cpu", "--trainer.max_steps", "2", "--trainer.num_sanity_val_steps", "0"]
    assert run_cli(args, tmp_path / "runs") == 2
    assert not (tmp_path / "runs" / "srm_r50").exists() or not list((tmp_path / "runs" / "srm_r50").iterdir())
    assert not list((tmp_path / "runs").rglob("*.ckpt"))


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_run_in_the_same_folder_never_overwrites_the_first(tmp_path: Path) -> None:
    args = [*COMMON, "--trainer.limit_train_batches", "2"]
    assert run_cli(args, tmp_path) == 0
    (first,) = run_dirs(tmp_path)
    before = _digests(first)
    assert {"config.yaml", "metrics.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt"} <= set(before)
    assert run_cli(args, tmp_path) == 0
    assert [p.name for p in run_dirs(tmp_path)] == ["version_0", "version_1"]
    assert _digests(first) == before


def test_a_checkpoint_write_that_fails_leaves_no_file_under_the_final_name(tmp_path: Path, monkeypatch) -> None:
    """Lightning writes checkpoints through an fsspec transaction (temp file, then rename)."""
    from fsspec.implementations import local

    assert run_cli([*COMMON, "--trainer.limit_train_batches", "2"], tmp_path / "good") == 0
    (good,) = run_dirs(tmp_path / "good")
    original = local.LocalFileOpener.write

    def write_half_then_fail(self, data):
        original(self, data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(local.LocalFileOpener, "write", write_half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        run_cli([*COMMON, "--trainer.limit_train_batches", "2"], tmp_path / "bad")
    for bad in run_dirs(tmp_path / "bad"):
        assert not list(bad.rglob("*.ckpt"))
    monkeypatch.undo()
    assert _weights(good / "checkpoints" / "last.ckpt")  # the earlier run's files still load


def test_a_batch_of_one_sample_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = run_cli([*COMMON, "--data.batch_size", "1", "--trainer.limit_train_batches", "2"], tmp_path)
    assert rc == 2
    (line,) = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert "batch of 1 sample" in line and "BatchNorm" in line and "data.batch_size" in line
