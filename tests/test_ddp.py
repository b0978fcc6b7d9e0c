"""Two-process CPU DDP (gloo) through the real entry point, in a subprocess (NOTES: DDP inside
pytest would relaunch pytest itself)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.cli_runner import last_value, run_cli_subprocess, run_dirs

DIGITS_TRAIN = 1437


def test_quickstart_on_two_cpu_processes_trains_both_ranks(tmp_path: Path) -> None:
    result = run_cli_subprocess([
        "fit", "--config", "quickstart.yaml", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "2",
    ], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_dirs(tmp_path)  # rank 0 alone made the run folder
    batch = 32
    per_rank_steps = (DIGITS_TRAIN // 2) // batch
    # train/samples is a SumMetric: synced over ranks, it counts both ranks' samples
    assert last_value(run, "train/samples") == 2 * per_rank_steps * batch
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["best.ckpt", "last.ckpt"]
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == per_rank_steps
