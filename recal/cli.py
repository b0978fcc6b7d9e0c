"""The LightningCLI behind ``cli.py``: defaults of the run contract, config lookup, errors.

Run contract (SPEC §5): every run gets its own versioned folder
``runs/<config name>/version_N`` holding ``config.yaml``, ``metrics.csv`` and
``checkpoints/{best,last}.ckpt``; ModelCheckpoint monitors ``val/acc1`` (max).
Nothing an earlier run wrote is overwritten: Lightning's SaveConfigCallback
refuses an existing config.yaml and each run takes a new version folder.
"""

from __future__ import annotations

import signal
import sys
import warnings
from pathlib import Path
from typing import Sequence

from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from recal.allocator import keep_freed_memory
from recal.callbacks import InterruptCheckpoint, RunCheckpoint, SkippedImagesReport
from recal.cli_errors import ConciseArgumentParser
from recal.config_paths import resolve_config_args
from recal.tasks.checkpoints import check_config_matches_checkpoint
from recal.errors import UserError

DEFAULT_RUNS_DIR = "runs"


class RecalCLI(LightningCLI):
    """LightningCLI with recal's checkpointing, logging and class-count link."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/acc1",
            "checkpoint.mode": "max",
            "checkpoint.filename": "best",
            "checkpoint.save_last": True,
            "checkpoint.save_top_k": 1,
        })
        parser.add_lightning_class_args(InterruptCheckpoint, "interrupt")
        parser.add_lightning_class_args(SkippedImagesReport, "skipped_images")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        # One seed drives weight init (seed_everything), sample order, augmentation and mixup.
        parser.link_arguments("seed_everything", "data.init_args.seed")
        parser.link_arguments("seed_everything", "model.init_args.seed")

    def _parse_ckpt_path(self) -> None:
        # LightningCLI replaces the config's model with the one a --ckpt_path checkpoint was
        # trained with; a config that asks for another backbone must fail, not be overridden.
        check_config_matches_checkpoint(self.config, self.config.get("subcommand"))
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        logger = config.get("trainer", {}).get("logger")
        # Name the run folder after the config file unless the config names it.
        if isinstance(logger, dict) or hasattr(logger, "init_args"):
            init_args = logger["init_args"] if isinstance(logger, dict) else logger.init_args
            if init_args.get("name") in (None, "default") and config.get("config"):
                init_args["name"] = Path(str(config["config"][-1])).stem


def trainer_defaults() -> dict:
    """Trainer defaults: a CSV logger under ``runs/`` (TensorBoard too when installed)."""
    return {
        "logger": {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": DEFAULT_RUNS_DIR, "name": "default"},
        },
    }


def find_user_error(error: BaseException | None) -> UserError | None:
    """The :class:`UserError` behind ``error``, if any.

    jsonargparse re-raises an error from a model's or datamodule's ``__init__`` as
    a ValueError of its own; the user's mistake is in its ``__cause__`` chain.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def create_cli(args: Sequence[str] | None = None, run: bool = True) -> RecalCLI:
    """Parse ``args`` (with a subcommand when ``run``) and instantiate trainer, model and data."""
    argv = resolve_config_args(list(sys.argv[1:] if args is None else args))
    if args is None:
        # DDP relaunches children from sys.argv: give them the resolved paths too,
        # and let LightningCLI read sys.argv itself (it warns when given both).
        sys.argv[1:] = argv
    return RecalCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        parser_class=ConciseArgumentParser,
        trainer_defaults=trainer_defaults(),
        args=None if args is None else argv,
        seed_everything_default=0,
        run=run,
    )


def main(args: Sequence[str] | None = None) -> int:
    """Run the CLI on ``args`` (default: ``sys.argv[1:]``); return the exit status."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="jsonargparse")
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    keep_freed_memory()
    try:
        create_cli(args)
    except (UserError, ValueError) as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        return 2
    except SIGTERMException:
        print("stopped by SIGTERM; the run's checkpoints/interrupted.ckpt resumes it (--ckpt_path)", file=sys.stderr)
        return 128 + signal.SIGTERM
    return 0
