"""A quiet console: Lightning's rich progress bar and model summary, minus what a user cannot act on.

Dropped: the progress bar's ``v_num`` (the run folder is printed at the start and the end of
every run instead), the summary's FLOPs column and "Total FLOPs: 0" (Lightning counts FLOPs
only with an example input; ``python -m recal.commands.complexity`` counts multiply-adds), the
litlogger advertisement, and warnings that repeat on every run without pointing at anything
in the user's config.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_summary import get_human_readable_count

# Message fragments of warnings that every run would print and no option of the user changes.
_NOISE = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*is smaller than the logging interval.*",
    r".*does not have many workers which may be a bottleneck.*",
    r".*callbacks used to create the checkpoint need to be provided.*",
)


# Lightning's loggers and the fragments of their info lines that say nothing to act on.
_CHATTER = {
    "lightning.pytorch.utilities.rank_zero": ("litlogger", "already configured with model summary"),
    "lightning.pytorch.trainer.connectors.checkpoint_connector": ("`weights_only` was not set",),
}


class _DropChatter(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


def quiet_lightning() -> None:
    """Filter Lightning's noise (see the module docstring); idempotent."""
    for name, fragments in _CHATTER.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropChatter) for f in logger.filters):
            logger.addFilter(_DropChatter(fragments))
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)


class RunProgressBar(RichProgressBar):
    """Lightning's rich progress bar without ``v_num``."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class RunModelSummary(RichModelSummary):
    """Lightning's rich model summary without the FLOPs column Lightning cannot fill."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name not in ("FLOPs",)]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            table.add_column(name or " ", justify="right" if name in ("Params", "Params per Device") else "left")
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        frozen = total_parameters - trainable_parameters
        console.print(f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}   "
                      f"[bold]Non-trainable params[/]: {get_human_readable_count(int(frozen))}   "
                      f"[bold]Size[/]: {model_size:.1f} MB   (multiply-adds: python -m recal.commands.complexity)")


class RunFolderNotice(L.Callback):
    """Print the run folder once the run is set up (a set-up error prints only its error)."""

    def __init__(self, folder: Path, resume: Optional[Path] = None) -> None:
        self.folder = folder
        self.resume = resume
        self._said = False

    @rank_zero_only
    def _say(self, trainer: L.Trainer) -> None:
        if self._said:
            return
        self._said = True
        stage = trainer.state.fn.value if trainer.state.fn is not None else "run"
        if trainer.fast_dev_run:
            text = f"{stage}: fast_dev_run writes no files"
        elif self.resume is not None:
            text = f"{stage}: continuing {self.folder} from {self.resume}"
        else:
            text = f"{stage}: writing {self.folder}"
        print(text, file=sys.stderr, flush=True)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._say(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._say(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._say(trainer)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._say(trainer)
