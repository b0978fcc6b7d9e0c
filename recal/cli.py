"""The LightningCLI behind ``cli.py``: run folders, checkpoints, resume, config lookup, errors.

Every run gets its own folder (see :mod:`recal.run_folder`): ``fit`` writes
``<root>/<config name>/version_N/`` with ``config.yaml``, ``metrics.csv`` and
``checkpoints/{best,last}.ckpt``; ``validate`` / ``test`` / ``predict`` with ``--ckpt_path``
write ``<run>/<subcommand>/version_N/``. ``--ckpt_path <run>/checkpoints/X.ckpt`` continues
that run in its own folder (only ``max_epochs`` / ``max_steps`` / ``max_time`` may change);
``--ckpt_path last`` finds the newest resumable checkpoint of this config. Nothing an earlier
run wrote is overwritten: a run pointed at a folder that holds files stops before writing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from lightning.pytorch.callbacks import ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from recal.allocator import keep_freed_memory
from recal.callbacks import (BestCheckpoint, InterruptCheckpoint, LastCheckpoint, LearningRateLog, PredictionsCSV,
                             RunConfigFile, SkippedImagesReport, received_signal)
from recal.callbacks.console import RunFolderNotice, RunModelSummary, RunProgressBar, quiet_lightning
from recal.callbacks.detections import DetectionsWriter  # by module path: recal.callbacks does not export it
from recal.cli_errors import ConciseArgumentParser
from recal.config_paths import resolve_config_args
from recal.errors import InvalidOptionError, UserError
from recal.paths import ensure_creatable
from recal import run_folder
from recal.run_folder import RunFolder
from recal.tasks.checkpoints import check_config_matches_checkpoint, check_same_task, read_checkpoint

DEFAULT_RUNS_DIR = run_folder.DEFAULT_ROOT
# Lightning's own default logger names: a run keeps the config's name instead.
_UNNAMED = (None, "", "default", "lightning_logs")
# Set by the process that plans a run, read by the DDP processes Lightning starts for it, so
# that all ranks agree on one folder (the children re-parse the command line).
_RUN_FOLDER_ENV = "RECAL_RUN_FOLDER"
# The run being placed in this process: main() removes it when set-up fails before it held anything.
_current: dict[str, Optional[RunFolder]] = {"run": None}


class RecalCLI(LightningCLI):
    """LightningCLI with recal's run folders, checkpoints and class-count link."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.add_lightning_class_args(InterruptCheckpoint, "interrupt")
        parser.add_lightning_class_args(SkippedImagesReport, "skipped_images")
        parser.add_lightning_class_args(PredictionsCSV, "predictions")
        parser.add_lightning_class_args(DetectionsWriter, "detections")
        parser.add_lightning_class_args(LearningRateLog, "lr_monitor")
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        # One seed drives weight init (seed_everything), sample order, augmentation and mixup.
        parser.link_arguments("seed_everything", "data.init_args.seed")
        parser.link_arguments("seed_everything", "model.init_args.seed")

    # ------------------------------------------------------------------ checkpoints given
    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        path = config.get("ckpt_path")
        if path in ("last", "best"):
            names = run_folder.RESUMABLE if path == "last" else ("best.ckpt",)
            config["ckpt_path"] = path = str(run_folder.latest_checkpoint(_root(config) / _name(config), names))
        if path:
            checkpoint = read_checkpoint(path)
            check_same_task(checkpoint, path, _model_class(config))
            check_config_matches_checkpoint(self.config, subcommand)
            run = run_folder.run_of_checkpoint(Path(path))
            if subcommand == "fit" and run is not None and not _ddp_child():
                self._check_resume_config(config, run, path)
        # LightningCLI replaces the config's model with the one the checkpoint was trained with
        super()._parse_ckpt_path()

    def _check_resume_config(self, config: Any, run: Path, path: str) -> None:
        saved = yaml.safe_load((run / run_folder.CONFIG_FILE).read_text()) or {}
        current = yaml.safe_load(self._parser("fit").dump(config, skip_none=False)) or {}
        ignored = (*run_folder.RESUME_MAY_CHANGE, *_PLACEMENT, "ckpt_path")
        differences = run_folder.config_differences(saved, current, ignored)
        if differences:
            raise InvalidOptionError(
                f"--ckpt_path {path} resumes {run}, whose config.yaml differs from this command in "
                + "; ".join(differences) + " — a resume may change only max_epochs, max_steps and max_time; "
                "leave out --ckpt_path to start a new run")

    # ------------------------------------------------------------------ the run folder
    placed: Optional[RunFolder] = None  # the run folder of this invocation

    def before_instantiate_classes(self) -> None:
        if not self.subcommand:
            return  # rebuilt for analysis (run=False): nothing is written
        config = self.config[self.subcommand]
        run = _plan(config, self.subcommand)
        _current["run"] = self.placed = run
        os.environ[_RUN_FOLDER_ENV] = str(run.path)
        restore = _place(config, run, self.subcommand)
        self.save_config_kwargs = {**self.save_config_kwargs, "restore": restore, "resuming": run.resume is not None}
        if run.resume is not None and not _ddp_child():
            step = int(read_checkpoint(run.resume)["global_step"])
            moved = run_folder.split_metrics(run.path, step)
            if moved is not None:
                _say(f"rows logged after step {step} (the checkpoint's) moved to {moved}")
            for path in run_folder.set_aside_later_checkpoints(run.path, step):
                _say(f"a checkpoint saved after step {step} moved to {path}")

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        config = self._get(self.config_init, "trainer", default={})
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        run = self.placed
        if run is not None:
            checkpoints = self.config[self.subcommand]["checkpoint"]["dirpath"]
            callbacks += [LastCheckpoint(dirpath=checkpoints), RunFolderNotice(run.path, run.resume)]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(RunProgressBar())
        if config.get("enable_model_summary") is not False and not any(isinstance(c, ModelSummary) for c in callbacks):
            callbacks.append(RunModelSummary())
        return super().instantiate_trainer(callbacks=callbacks, **kwargs)

    def _run_subcommand(self, subcommand: str) -> None:
        run = self.placed
        if run is not None and run.resume is not None:
            for logger in self.trainer.loggers:
                run_folder.continue_metrics(logger)
        super()._run_subcommand(subcommand)
        if run is not None and not self.trainer.fast_dev_run:
            _say(f"{subcommand} done: {run.path}")


# Config keys recal sets to place a run; config.yaml keeps the user's values of them.
_PLACEMENT = ("trainer.default_root_dir", "trainer.logger.init_args.save_dir", "trainer.logger.init_args.name",
              "trainer.logger.init_args.version", "checkpoint.dirpath", "interrupt.dirpath")


def _logger_args(config: Any) -> Any:
    logger = config.get("trainer", {}).get("logger")
    return logger.get("init_args") if hasattr(logger, "get") and logger.get("init_args") is not None else None


def _root(config: Any) -> Path:
    """``--trainer.default_root_dir``, else the logger's ``save_dir``, else ``runs``."""
    args = _logger_args(config)
    given = config.get("trainer", {}).get("default_root_dir") or (args.get("save_dir") if args is not None else None)
    return Path(given or DEFAULT_RUNS_DIR)


def _name(config: Any) -> str:
    """The logger's name, else the config file's stem."""
    args = _logger_args(config)
    name = args.get("name") if args is not None else None
    if name in _UNNAMED:
        files = config.get("config") or []
        name = Path(str(files[-1])).stem if files else "default"
    return str(name)


def _model_class(config: Any) -> Optional[str]:
    model = config.get("model")
    return model.get("class_path") if hasattr(model, "get") else None


def _ddp_child() -> bool:
    return bool(os.environ.get(_RUN_FOLDER_ENV)) and "LOCAL_RANK" in os.environ


def _plan(config: Any, subcommand: str) -> RunFolder:
    """The folder this run writes (see :mod:`recal.run_folder`); refuses one that holds an earlier run."""
    checkpoint = config.get("ckpt_path")
    of_checkpoint = run_folder.run_of_checkpoint(Path(checkpoint)) if checkpoint else None
    if _ddp_child():
        path = Path(os.environ[_RUN_FOLDER_ENV])
        resume = Path(checkpoint) if subcommand == "fit" and of_checkpoint == path else None
        return RunFolder(path, resume, existed=True)
    if subcommand == "fit" and of_checkpoint is not None:
        return RunFolder(of_checkpoint, Path(checkpoint), existed=True)
    args = _logger_args(config)
    version = args.get("version") if args is not None else None
    parent = _root(config) / _name(config)
    if subcommand != "fit":
        parent = (of_checkpoint or parent) / subcommand
    path = parent / (str(version) if version not in (None, "") else run_folder.next_version(parent))
    ensure_creatable(path, "run folder")
    if version not in (None, ""):
        run_folder.refuse_existing(path)
    return RunFolder(path, None, existed=path.exists())


def _place(config: Any, run: RunFolder, subcommand: str) -> dict[str, Any]:
    """Point the trainer, logger and checkpoint callbacks at ``run``; return the values they replaced."""
    restore: dict[str, Any] = {}
    root, name = _root(config), _name(config)

    def put(key: str, value: Any) -> None:
        restore[key] = config.get(key)
        config[key] = value

    put("trainer.default_root_dir", str(run.path))
    args = _logger_args(config)
    if args is not None:
        # loggers write to <save_dir>/<name>/<version>: make that the run folder
        if subcommand == "fit" and run.path == root / name / run.path.name:
            save_dir = root
        elif subcommand == "fit":  # a resumed run outside this root
            save_dir, name = run.path.parent, ""
        else:
            save_dir, name = run.path.parent.parent, run.path.parent.name
        for key, value in (("save_dir", str(save_dir)), ("name", str(name)), ("version", run.path.name)):
            if key in args:
                put(f"trainer.logger.init_args.{key}", value)
    # validate/test read a training run's checkpoint: its callbacks' state names that run's folder
    checkpoint = config.get("ckpt_path")
    trained = run_folder.run_of_checkpoint(Path(checkpoint)) if checkpoint else None
    checkpoints = trained / run_folder.CHECKPOINTS if subcommand != "fit" and trained else run.checkpoints
    for key in ("checkpoint.dirpath", "interrupt.dirpath"):
        if config.get(key) is None:
            put(key, str(checkpoints))
    return restore


@rank_zero_only
def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def trainer_defaults(args: Sequence[str] = ()) -> dict:
    """Trainer defaults: a CSV logger named after the config file (``--config``'s stem)."""
    configs = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--config"]
    configs += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    name = Path(configs[-1]).stem if configs else "default"
    return {
        "logger": {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": DEFAULT_RUNS_DIR, "name": name},
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
        if isinstance(error, ModuleNotFoundError):  # an optional package a chosen class needs
            extra = next((extra for package, extra in _EXTRAS.items() if package in str(error)), None)
            return UserError(f"{_first_line(error)} — a class in the config needs a package that is not installed"
                             + (f": pip install -e '.[{extra}]'" if extra else ""))
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


# optional packages and the pyproject extra that installs each
_EXTRAS = {"tensorboard": "tensorboard", "pycocotools": "detection", "timm": "timm", "onnx": "export"}


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
        save_config_callback=RunConfigFile,
        trainer_defaults=trainer_defaults(argv),
        args=None if args is None else argv,
        seed_everything_default=0,
        run=run,
    )


def main(args: Sequence[str] | None = None) -> int:
    """Run the CLI on ``args`` (default: ``sys.argv[1:]``); return the exit status."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="jsonargparse")
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    quiet_lightning()
    keep_freed_memory()
    _current["run"] = None
    if not _ddp_child():
        os.environ.pop(_RUN_FOLDER_ENV, None)
    try:
        create_cli(args)
    except (UserError, ValueError) as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        _forget_unused_run()
        print(f"error: {user_error}", file=sys.stderr)
        return 2
    except SIGTERMException:
        signum = received_signal() or signal.SIGTERM
        run = _current["run"]
        where = run.checkpoints / "interrupted.ckpt" if run else "checkpoints/interrupted.ckpt"
        print(f"stopped by {signal.Signals(signum).name}; --ckpt_path {where} resumes the run", file=sys.stderr)
        return 128 + signum
    finally:
        if not _ddp_child():
            os.environ.pop(_RUN_FOLDER_ENV, None)
    return 0


def _forget_unused_run() -> None:
    """Remove the folder of a run that failed before writing a checkpoint or a metric (never an earlier run's)."""
    run = _current["run"]
    if run is not None and not run.existed and run_folder.remove_unused(run.path):
        logging.getLogger(__name__).debug("removed %s", run.path)
