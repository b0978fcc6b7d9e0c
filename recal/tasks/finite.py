"""Stop training at a non-finite loss, before its backward pass and optimizer step.

Under DDP the decision is all-reduced, so every rank stops at the same step and none waits
forever in the next gradient all-reduce. Only the loss is checked: under 16-bit AMP an
infinite *gradient* is GradScaler's business (it skips that step), not an error.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from recal.errors import NonFiniteLossError


def last_good_checkpoint(trainer: L.Trainer) -> str:
    """A phrase naming the newest checkpoint this run wrote (its weights were finite), or saying there is none."""
    from recal.callbacks.checkpoint import LastCheckpoint

    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint) and callback.saved_step is not None:
            return (f"the last checkpoint with finite weights is {callback.path} (step {callback.saved_step}); "
                    f"--ckpt_path resumes from it")
    best = trainer.checkpoint_callback
    if best is not None and getattr(best, "best_model_path", ""):
        return f"the last checkpoint with finite weights is {best.best_model_path}"
    return "no checkpoint was written before it"


def stop_if_not_finite(task: L.LightningModule, loss: Tensor, advice: str = "") -> None:
    """Raise :class:`NonFiniteLossError` naming the step, when ``loss`` is not finite on any rank."""
    finite_here = bool(torch.isfinite(loss.detach()).all())
    trainer = task._trainer
    finite = finite_here
    if trainer is not None and trainer.world_size > 1:
        finite = trainer.strategy.reduce_boolean_decision(finite_here, all=True)
    if finite:
        return
    value = loss.detach().float().item() if loss.numel() == 1 else "non-finite"
    where = "training loss on another rank" if finite_here else f"training loss {value}"
    epoch = f" (epoch {task.current_epoch})" if trainer is not None else ""
    checkpoint = f"; {last_good_checkpoint(trainer)}" if trainer is not None else ""
    raise NonFiniteLossError(f"non-finite {where} at global step {task.global_step}{epoch}, stopped before "
                             f"its optimizer step{checkpoint}" + (f"; {advice}" if advice else ""))
