"""Compare a checkpoint's weights with the model they are about to load into.

Lightning's own strict load fails with a page-long ``RuntimeError`` listing
every mismatching tensor; a user who passed the wrong ``--ckpt_path`` needs one
line: which file, which model, and the first few differences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from recal.errors import CheckpointMismatchError, InvalidOptionError
from recal.tasks.state_dict_differences import state_dict_differences


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The Lightning checkpoint in ``path``; a missing, empty, truncated or foreign file is one clear error.

    Read with ``weights_only=True``: recal's checkpoints hold tensors and plain hyperparameters only.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidOptionError(f"checkpoint {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise InvalidOptionError(f"checkpoint {path} is empty (0 bytes)")
    try:  # mmap: reading a step or the hyperparameters does not load a large file into memory
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # truncated zip, a text file, a pickle of something else
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InvalidOptionError(f"checkpoint {path} cannot be read (truncated, or not a PyTorch file): {reason}") \
            from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "global_step" not in checkpoint:
        raise InvalidOptionError(f"checkpoint {path} is not a Lightning checkpoint of a run (no state_dict and "
                                 "global_step); a plain state dict goes to the task's weights option instead")
    return checkpoint


def check_same_task(checkpoint: dict[str, Any], path: str | Path, task_class_path: str | None) -> None:
    """Raise :class:`CheckpointMismatchError` when ``checkpoint`` was written by another task class."""
    saved = checkpoint.get("hyper_parameters", {}).get("_class_path")
    if saved and task_class_path and saved != task_class_path:
        raise CheckpointMismatchError(f"checkpoint {path} was written by {saved}, but this config trains "
                                      f"{task_class_path}; pass a config of that task")


def check_checkpoint_fits(own: Mapping[str, Tensor], checkpoint: Mapping[str, Any], path: str | None,
                          model_description: str) -> None:
    """Raise :class:`CheckpointMismatchError` when ``checkpoint`` cannot resume this model."""
    differences = state_dict_differences(own, checkpoint.get("state_dict", {}))
    if not differences:
        return
    saved = checkpoint.get("hyper_parameters", {})
    backbone = saved.get("backbone")
    origin = ""
    if backbone is not None or "num_classes" in saved:
        name = getattr(backbone, "name", None) or (backbone.get("name") if isinstance(backbone, dict) else None)
        origin = f" (it was saved from {name or 'another model'} with {saved.get('num_classes', '?')} classes)"
    raise CheckpointMismatchError(
        f"checkpoint {path or '<given>'} does not fit {model_description}{origin}: " + "; ".join(differences))


def _options(backbone: Any) -> dict[str, Any]:
    if backbone is None:
        return {}
    if hasattr(backbone, "as_dict"):
        backbone = backbone.as_dict()
    elif not isinstance(backbone, dict):
        backbone = vars(backbone)
    return {key: value for key, value in backbone.items() if value is not None}


def check_config_matches_checkpoint(config: Any, subcommand: str | None) -> None:
    """Raise :class:`CheckpointMismatchError` when ``--ckpt_path`` was trained with another backbone.

    ``config`` is LightningCLI's parsed namespace; only configs whose model has a
    ``backbone`` are compared (a checkpoint without one is left to Lightning).
    """
    if not subcommand:
        return
    path = config[subcommand].get("ckpt_path")
    if not path or not Path(path).is_file():
        return
    model = config[subcommand].get("model")
    init_args = model.get("init_args") if model is not None else None
    wanted = _options(init_args.get("backbone") if init_args is not None else None)
    saved_hparams = read_checkpoint(path).get("hyper_parameters", {})
    saved = _options(saved_hparams.get("backbone"))
    if wanted and saved and wanted != saved:
        differing = sorted(k for k in wanted.keys() | saved.keys() if wanted.get(k) != saved.get(k))
        shown = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs config {wanted.get(k)!r}" for k in differing)
        raise CheckpointMismatchError(f"checkpoint {path} was trained with another backbone than this config "
                                      f"asks for ({shown}); pass the config it was trained with")
