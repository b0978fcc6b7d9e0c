"""Faults: signals mid-epoch, non-finite losses, partial writes, reruns in the same folder (issue 8)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cli_runner import QUIET, ROOT, run_cli, run_dirs

COMMON = ["fit", "--config", "quickstart.yaml", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "12",
          "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _start(args: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "cli.py"), *args, "--trainer.logger.init_args.save_dir", str(out), *QUIET]
    return subprocess.Popen(command, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_epoch_saves_a_checkpoint_that_resumes_exactly(signum: int, tmp_path: Path) -> None:
    markers = ["--trainer.callbacks+=tests.reliability.callbacks.StepMarker",
               "--trainer.callbacks+=tests.reliability.callbacks.SlowSteps"]
    (tmp_path / "straight").mkdir(), (tmp_path / "stopped").mkdir(), (tmp_path / "resumed").mkdir()
    straight = _start([*COMMON, *markers], tmp_path / "straight")
    stopped = _start([*COMMON, *markers], tmp_path / "stopped")
    for line in stopped.stdout:
        if line.strip() == "STEP 4":
            stopped.send_signal(signum)
            break
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode != 0, err[-2000:]
    assert "Traceback" not in err
    (run,) = run_dirs(tmp_path / "stopped")
    interrupted = run / "checkpoints" / "interrupted.ckpt"
    assert interrupted.is_file(), err[-2000:]
    state = torch.load(interrupted, map_location="cpu", weights_only=False)
    assert 4 <= state["global_step"] < 12  # stopped mid-epoch, at a batch boundary
    assert not (run / "checkpoints" / "last.ckpt").exists()

    resumed = _start([*COMMON, "--ckpt_path", str(interrupted)], tmp_path / "resumed")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    straight.communicate(timeout=300)
    assert straight.returncode == 0
    (a,), (b,) = run_dirs(tmp_path / "straight"), run_dirs(tmp_path / "resumed")
    wa, wb = _weights(a / "checkpoints" / "last.ckpt"), _weights(b / "checkpoints" / "last.ckpt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])][:5]


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = run_cli([*COMMON, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "4",
                  "--trainer.callbacks+=tests.reliability.callbacks.InjectNaN",
                  "--trainer.callbacks.init_args.at_step", "6"], tmp_path)
    assert rc == 2
    (line,) = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert "non-finite" in line and "nan" in line and "step 6" in line
    (run,) = run_dirs(tmp_path)
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4  # the end of the first epoch, before the NaN
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


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
    (bad,) = run_dirs(tmp_path / "bad")
    assert not list((bad / "checkpoints").glob("*.ckpt")) if (bad / "checkpoints").exists() else True
    monkeypatch.undo()
    assert _weights(good / "checkpoints" / "last.ckpt")  # the earlier run's files still load


def test_a_batch_of_one_sample_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = run_cli([*COMMON, "--data.batch_size", "1", "--trainer.limit_train_batches", "2"], tmp_path)
    assert rc == 2
    (line,) = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert "batch of 1 sample" in line and "BatchNorm" in line and "data.batch_size" in line
