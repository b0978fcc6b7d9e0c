"""2-process CPU DDP (gloo) equals 1 process accumulating the same per-rank micro-batches.

With BatchNorm, a single batch of the global size cannot match DDP (BN statistics
are per rank), but one process that runs rank 0's and rank 1's micro-batches in turn with
``accumulate_grad_batches=2`` computes the same gradients: ∇(L₀/2) + ∇(L₁/2) = (∇L₀ + ∇L₁)/2
exactly in floating point. BatchNorm running statistics differ by design (DDP broadcasts
rank 0's buffers), so the comparison is over parameters. Both runs use one intra-op thread
per process (what Lightning's DDP picks on a 2-core machine): a different thread count
changes the reduction order inside convolutions and with it the last bits.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.cli_runner import run_cli, run_cli_subprocess, run_dirs

STEPS = ["fit", "--config", "quickstart.yaml", "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1",
         "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", "cpu"]


def _parameters(run: Path) -> tuple[dict[str, torch.Tensor], int]:
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return state["state_dict"], state["global_step"]


def test_ddp_equals_gradient_accumulation_over_the_same_micro_batches(tmp_path: Path) -> None:
    one_thread = {"OMP_NUM_THREADS": "1"}
    ddp = run_cli_subprocess([*STEPS, "--trainer.devices", "2", "--trainer.strategy", "ddp"], tmp_path / "ddp",
                             timeout=600, env=one_thread)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    accumulated = run_cli_subprocess([*STEPS, "--trainer.devices", "1", "--trainer.accumulate_grad_batches", "2",
                                      "--data.interleave_ranks", "2"], tmp_path / "accumulated", env=one_thread)
    assert accumulated.returncode == 0, accumulated.stderr[-3000:]
    (ddp_run,), (acc_run,) = run_dirs(tmp_path / "ddp"), run_dirs(tmp_path / "accumulated")
    (a, a_step), (b, b_step) = _parameters(ddp_run), _parameters(acc_run)
    assert a_step == b_step == 3
    buffers = ("running_mean", "running_var", "num_batches_tracked", "channel_mask")
    params = [k for k in a if not k.endswith(buffers)]
    assert len(params) > 50
    differing = [k for k in params if not torch.equal(a[k], b[k])]
    assert not differing, differing[:5]
    assert a.keys() == b.keys()


def test_a_single_process_with_the_global_batch_differs(tmp_path: Path) -> None:
    """The control: without per-rank micro-batches, BatchNorm makes the weights differ."""
    assert run_cli([*STEPS, "--trainer.devices", "1", "--trainer.accumulate_grad_batches", "2",
                    "--data.interleave_ranks", "2"], tmp_path / "accumulated") == 0
    assert run_cli([*STEPS, "--trainer.devices", "1", "--data.batch_size", "64"], tmp_path / "global") == 0
    (acc,), (big,) = run_dirs(tmp_path / "accumulated"), run_dirs(tmp_path / "global")
    a, _ = _parameters(acc)
    b, _ = _parameters(big)
    assert not torch.equal(a["model.conv1.weight"], b["model.conv1.weight"])
