"""Where a run's files go, and the rules that keep earlier runs intact.

Every ``cli.py`` run owns one folder:

- ``fit``: ``<root>/<name>/version_N`` — ``root`` is ``--trainer.default_root_dir`` (else the
  logger's ``save_dir``, else ``runs``), ``name`` the logger's name (by default the config
  file's stem), ``N`` the next free number unless the logger names a version;
- ``fit --ckpt_path <run>/checkpoints/X.ckpt``: ``<run>`` itself (resume);
- ``validate`` / ``test`` / ``predict`` with ``--ckpt_path``: ``<run>/<subcommand>/version_N``
  beside the checkpoint's run, else ``<root>/<name>/<subcommand>/version_N``.

A folder that already holds files is never written into, except by a resume: a run pointed
at one stops before writing anything. Resuming moves the ``metrics.csv`` rows logged after
the checkpoint's step (a crash between checkpoints) to ``metrics.discarded-K.csv`` and keeps
every earlier row byte for byte; checkpoints saved after that step become
``<name>.discarded-K.ckpt``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import yaml

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from recal.errors import InvalidOptionError

DEFAULT_ROOT = "runs"
CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
RESUMABLE = ("last.ckpt", "interrupted.ckpt")
# Only these may differ between a run's saved config and the command that resumes it: they say
# how long to train, not what is trained.
RESUME_MAY_CHANGE = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time")
_VERSION = re.compile(r"^version_(\d+)$")


@dataclass
class RunFolder:
    """A run's folder; ``resume`` is the checkpoint a resumed fit continues from."""

    path: Path
    resume: Optional[Path] = None
    existed: bool = False

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS


def version_numbers(parent: Path) -> list[int]:
    """The N of every ``version_N`` folder in ``parent``, ascending."""
    if not parent.is_dir():
        return []
    return sorted(int(m.group(1)) for p in parent.iterdir() if p.is_dir() and (m := _VERSION.match(p.name)))


def next_version(parent: Path) -> str:
    """``version_N`` with N one above the highest in ``parent`` (``version_0`` for a new parent)."""
    numbers = version_numbers(parent)
    return f"version_{numbers[-1] + 1 if numbers else 0}"


def holds_files(folder: Path) -> bool:
    """Whether ``folder`` exists and contains anything at all."""
    return folder.is_dir() and any(folder.iterdir())


def run_of_checkpoint(checkpoint: Path) -> Optional[Path]:
    """The run folder of ``<run>/checkpoints/X.ckpt`` (one holding a config.yaml), else None."""
    checkpoint = Path(checkpoint)
    run = checkpoint.parent.parent
    if checkpoint.parent.name == CHECKPOINTS and (run / CONFIG_FILE).is_file():
        return run
    return None


def refuse_existing(folder: Path) -> None:
    """Raise :class:`InvalidOptionError` when ``folder`` already holds files (an earlier run's)."""
    if holds_files(folder):
        raise InvalidOptionError(
            f"run folder {folder} already holds an earlier run's files; recal never writes into it. Choose "
            "another --trainer.logger.init_args.version (or none for the next free one), or resume that run "
            f"with --ckpt_path {folder / CHECKPOINTS / 'last.ckpt'}")


def resumable_checkpoint(run: Path, names: Iterable[str] = RESUMABLE) -> Optional[Path]:
    """Of ``run/checkpoints/{names}``, the one with the larger ``global_step`` (None when there is none)."""
    from recal.tasks.checkpoints import read_checkpoint

    found = [run / CHECKPOINTS / n for n in names if (run / CHECKPOINTS / n).is_file()]
    return max(found, key=lambda p: int(read_checkpoint(p).get("global_step", -1))) if found else None


def latest_checkpoint(parent: Path, names: Iterable[str] = RESUMABLE) -> Path:
    """The checkpoint to continue from under ``parent``: the highest ``version_N`` holding one of
    ``names``, and of those files the one with the larger ``global_step``."""
    names = tuple(names)
    for number in reversed(version_numbers(parent)):
        found = resumable_checkpoint(parent / f"version_{number}", names)
        if found is not None:
            return found
    raise InvalidOptionError(f"--ckpt_path {'last' if 'last.ckpt' in names else 'best'}: no version_N folder under "
                             f"{parent} holds checkpoints/{' or '.join(names)}")


def resume_arguments(run: Path) -> list[str]:
    """``--ckpt_path`` of an unfinished run's newest checkpoint; none for a folder not started yet.

    For the commands that rerun their own runs (``recal.commands.folds``, ``recal.commands.sweep``).
    """
    if not holds_files(run):
        return []
    found = resumable_checkpoint(run)
    if found is None:
        raise InvalidOptionError(f"{run} holds a run that stopped before its first checkpoint; delete that folder "
                                 "and run again to redo it")
    return ["--ckpt_path", str(found)]


def split_metrics(run: Path, step: int) -> Optional[Path]:
    """Move the rows of ``run/metrics.csv`` logged at ``step`` or later to ``metrics.discarded-K.csv``.

    A resumed fit logs those steps again. Kept rows are left byte for byte; returns the side
    file, or None when nothing was logged after ``step``.
    """
    metrics = run / METRICS_FILE
    if not metrics.is_file():
        return None
    lines = metrics.read_bytes().splitlines(keepends=True)  # bytes: the CSV's \r\n line ends stay as they are
    if len(lines) < 2:
        return None
    header = next(csv.reader([lines[0].decode()]))
    if "step" not in header:
        return None
    column = header.index("step")
    kept, discarded = [lines[0]], [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line.decode()]), [])
        logged_at = row[column] if len(row) > column else ""
        (discarded if logged_at and int(float(logged_at)) >= step else kept).append(line)
    if len(discarded) == 1:
        return None
    side = run / f"metrics.discarded-{1 + len(list(run.glob('metrics.discarded-*.csv')))}.csv"
    side.write_bytes(b"".join(discarded))
    # write-then-rename: a crash leaves the old file or the new one, never half of one
    temporary = metrics.with_name(metrics.name + ".tmp")
    temporary.write_bytes(b"".join(kept))
    os.replace(temporary, metrics)
    return side


def set_aside_later_checkpoints(run: Path, step: int) -> list[Path]:
    """Rename the run's checkpoints saved after ``step`` to ``<name>.discarded-K.ckpt``; return the new paths.

    Resuming from an earlier checkpoint discards what came after it: those files would
    otherwise pose as this run's (a ``last.ckpt`` ahead of the resumed state, a ``best.ckpt``
    the resumed best-tracking knows nothing of).
    """
    from recal.tasks.checkpoints import read_checkpoint

    moved = []
    for path in sorted((run / CHECKPOINTS).glob("*.ckpt")):
        if ".discarded-" in path.name or int(read_checkpoint(path).get("global_step", -1)) <= step:
            continue
        number = 1 + len(list(path.parent.glob(f"{path.stem}.discarded-*.ckpt")))
        target = path.with_name(f"{path.stem}.discarded-{number}.ckpt")
        os.replace(path, target)
        moved.append(target)
    return moved


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": value}`` (lists are values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], ignored: Iterable[str] = ()) -> list[str]:
    """``key: saved → current`` for every dotted key whose value differs, except ``ignored`` ones."""
    a, b = flatten(saved), flatten(current)
    ignored = tuple(ignored)
    keys = sorted(k for k in a.keys() | b.keys()
                  if a.get(k) != b.get(k) and not any(k == i or k.startswith(i + ".") for i in ignored))
    return [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in keys]


def refuse_other_options(options_file: Path, options: Mapping[str, Any], what: str) -> None:
    """Raise :class:`InvalidOptionError` when ``options_file`` (a command's saved options) holds other ``options``.

    ``recal.commands.folds`` and ``recal.commands.sweep`` keep their options beside their runs: the
    same ``--out`` with the same options resumes, other options would mix two experiments in one folder.
    """
    if not options_file.is_file():
        return
    differing = config_differences(yaml.safe_load(options_file.read_text()) or {}, options)
    if differing:
        raise InvalidOptionError(f"{options_file.parent} holds {what} with other options ({'; '.join(differing)}); "
                                 "give another --out, or the same options to resume it")


def is_unused(folder: Path) -> bool:
    """Whether a run folder holds nothing a user would miss: no checkpoint, and no metric but learning rates.

    (The learning-rate monitor logs before the first batch, so a run that failed at its first
    batch has a metrics.csv with one row of learning rates.)
    """
    if not folder.is_dir() or any(folder.rglob("*.ckpt")):
        return False
    metrics = folder / METRICS_FILE
    if not metrics.is_file():
        return True
    with open(metrics, newline="") as file:
        for row in csv.DictReader(file):
            if any(value and key not in ("epoch", "step") and not key.startswith("lr-") for key, value in row.items()):
                return False
    return True


def remove_unused(folder: Path) -> bool:
    """Delete ``folder`` when :func:`is_unused` (a run that failed during set-up); return whether it did."""
    if not is_unused(folder):
        return False
    shutil.rmtree(folder)
    return True



class ContinuedMetricsWriter(ExperimentWriter):
    """Lightning's CSV writer that continues an existing ``metrics.csv`` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


def continue_metrics(logger: Any) -> None:
    """Let a resumed run's CSV logger append to the run's ``metrics.csv``.

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts; this writer
    reads its header instead, so rows keep their columns and earlier rows stay byte for byte
    (unless the resumed run logs a metric the file has no column for: then, as in any
    Lightning run, the file is rewritten once with the wider header).
    """
    if isinstance(logger, CSVLogger) and logger._experiment is None:
        logger._experiment = ContinuedMetricsWriter(log_dir=logger.log_dir)
