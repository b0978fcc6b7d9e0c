"""The run's ``config.yaml``: the config as the user gave it, written once per run folder.

LightningCLI's ``SaveConfigCallback`` would save the config after recal placed the run
(``default_root_dir``, the logger's version, checkpoint folders): rerunning that file
would then point at the old folder. This one saves the config with those values as the
user wrote them (``restore``) and, for a fit, without ``ckpt_path``, so ``cli.py fit --config
<run>/config.yaml`` starts a new run of the same experiment. A resumed run (``resuming``)
keeps an identical config.yaml untouched; one resumed with other ``max_*`` limits gets
the new config.yaml, the old one kept as ``config.previous-K.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback


class RunConfigFile(SaveConfigCallback):
    """Save ``<run>/config.yaml`` (see the module docstring); never overwrite another run's."""

    def __init__(self, *args: Any, restore: Mapping[str, Any] | None = None, resuming: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.restore = dict(restore or {})
        self.resuming = resuming

    def as_given(self, stage: str = "fit") -> Any:
        """The config with recal's placement undone (and, for a fit, without the checkpoint it resumed)."""
        config = self.config.clone()
        for key, value in {**self.restore, **({"ckpt_path": None} if stage == "fit" else {})}.items():
            if key in config:
                config[key] = value
        return config

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        path = Path(trainer.log_dir) / self.config_filename
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(path.name + ".tmp")
            self.parser.save(self.as_given(stage), temporary, skip_none=False, overwrite=True, multifile=False)
            if path.is_file() and path.read_bytes() == temporary.read_bytes():
                temporary.unlink()
            else:
                if path.is_file():
                    if not self.resuming:
                        temporary.unlink()
                        raise RuntimeError(f"{path} exists: recal refuses to overwrite another run's config")
                    previous = len(list(path.parent.glob("config.previous-*.yaml"))) + 1
                    os.replace(path, path.with_name(f"config.previous-{previous}.yaml"))
                os.replace(temporary, path)
        self.already_saved = trainer.strategy.broadcast(True)
