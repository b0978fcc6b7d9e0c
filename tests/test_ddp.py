"""Two-process CPU DDP (gloo) through the real entry point, in a subprocess (NOTES: DDP inside
pytest would relaunch pytest itself)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.cli_runner import last_value, read_metrics, run_cli_subprocess, run_dirs

DIGITS_TRAIN = 1437


def test_quickstart_on_two_cpu_processes_trains_both_ranks(tmp_path: Path) -> None:
    result = run_cli_subprocess([
        "fit", "--config", "quickstart.yaml", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "2",
        "--trainer.limit_train_batches", "6", "--checkpoint.mode", "min",
    ], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_dirs(tmp_path)  # rank 0 alone made the run folder
    batch, per_rank_steps = 32, 6
    assert (DIGITS_TRAIN // 2) // batch >= per_rank_steps
    # train/samples is a SumMetric: synced over ranks, it counts both ranks' samples
    assert last_value(run, "train/samples") == 2 * per_rank_steps * batch
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["best.ckpt", "last.ckpt"]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 2 * per_rank_steps and last["epoch"] == 1  # the final state
    # mode min keeps the worse epoch as "best"; last.ckpt is the final state whichever it is
    accuracies = [float(r["val/acc1"]) for r in read_metrics(run) if r.get("val/acc1")]
    assert best["global_step"] == per_rank_steps * (1 + accuracies.index(min(accuracies)))


def test_a_nan_on_one_rank_stops_every_rank_at_that_step(tmp_path: Path) -> None:
    """The non-finite check is all-reduced: rank 0 must not wait forever in the next gradient all-reduce."""
    result = run_cli_subprocess([
        "fit", "--config", "quickstart.yaml", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
        "--trainer.callbacks+=tests.reliability.callbacks.InjectNaN", "--trainer.callbacks.init_args.at_step", "4",
        "--trainer.callbacks.init_args.rank", "1",
    ], tmp_path, timeout=300, env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and all("step 4" in line and "non-finite" in line for line in errors), result.stderr[-3000:]
    assert any("another rank" in line for line in errors)  # rank 0's own loss was finite
    (run,) = run_dirs(tmp_path)
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 3  # the first epoch's end; nothing written after the NaN
