"""Reading what training wrote (the run folder of :mod:`recal.run_folder`) and where analyses write.

A run folder holds ``config.yaml`` (the effective config LightningCLI saved),
``metrics.csv`` (CSVLogger) and ``checkpoints/{best,last}.ckpt``. The analysis
commands find runs by those files, read a config key's value from config.yaml
(a sweep variant), the last logged metrics from metrics.csv, and rebuild a
checkpoint's task and datamodule from its config exactly as ``cli.py`` would.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import pickle
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import yaml

from recal.errors import CheckpointMismatchError, DatasetNotFoundError, InvalidOptionError
from recal.paths import make_folder
from recal.run_folder import CHECKPOINTS, CONFIG_FILE, METRICS_FILE

# Arguments of Trainer.fit that LightningCLI saves beside the config; the
# subcommand-less parser used to rebuild a run does not take them.
FIT_ONLY_KEYS = ("ckpt_path", "weights_only")
# The saved trainer may ask for 8 GPUs, DDP or AMP; rebuilding model and data
# for analysis needs none of it, and must work on the machine at hand.
SAFE_TRAINER = ["--trainer.logger", "false", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                "--trainer.num_nodes", "1", "--trainer.strategy", "auto", "--trainer.precision", "32-true",
                "--trainer.sync_batchnorm", "false", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false"]


def output_dir(tool: str, out: Optional[str]) -> Path:
    """``out``, or a fresh ``runs/<tool>/<timestamp>`` (suffixed when taken); created.

    A folder that cannot be created (under a regular file, not writable) raises
    :class:`InvalidOptionError` naming it and why.
    """
    if out:
        folder = Path(out)
    else:
        base = Path("runs") / tool / time.strftime("%Y%m%d-%H%M%S")
        folder, n = base, 1
        while folder.exists():  # two commands in one second must not share a folder
            folder, n = base.with_name(f"{base.name}-{n}"), n + 1
    return make_folder(folder, "output folder")


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when a failed command left it empty (no stray timestamped folders)."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; any other name as given (``cuda:1``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def find_runs(root: Path) -> list[Path]:
    """Every run folder (``config.yaml`` beside ``metrics.csv``) at or below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"run folder {root} does not exist")
    return sorted(p.parent for p in root.rglob(CONFIG_FILE) if (p.parent / METRICS_FILE).is_file())


def read_config(run: Path) -> dict[str, Any]:
    """The run's saved config as plain YAML data."""
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} does not exist; give the config of the run with --config")
    with open(path) as f:
        return yaml.safe_load(f) or {}


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key``; ``init_args`` levels may be left out (``model.backbone.pooling``)."""
    node: Any = config
    for part in key.split("."):
        if isinstance(node, dict) and part not in node and isinstance(node.get("init_args"), dict):
            node = node["init_args"]
        if not isinstance(node, dict) or part not in node:
            raise InvalidOptionError(f"config key {key!r} not found (no {part!r}) in the run's config.yaml")
        node = node[part]
    return node


def read_metrics(run: Path) -> list[dict[str, str]]:
    """The rows of the run's metrics.csv."""
    with open(Path(run) / METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def final_metrics(run: Path, keys: Sequence[str]) -> dict[str, float]:
    """The last logged value of each metric in ``keys`` (NaN when never logged)."""
    found = {key: math.nan for key in keys}
    for row in read_metrics(run):
        for key in keys:
            if row.get(key) not in (None, ""):
                found[key] = float(row[key])
    return found


def checkpoint_file(path: str | Path, which: str = "best") -> Path:
    """``path`` if it is a file, else ``<which>.ckpt`` (then ``last.ckpt``) of a run folder.

    A folder is a run folder (its ``checkpoints/`` is searched) or a ``checkpoints/``
    folder itself.
    """
    path = Path(path)
    names = [f"{name}.ckpt" for name in dict.fromkeys((which, "last"))]
    if path.is_dir():
        for folder in (path / CHECKPOINTS, path):
            for name in names:
                if (folder / name).is_file():
                    return folder / name
        raise DatasetNotFoundError(f"run folder {path} holds no {CHECKPOINTS}/{' or '.join(names)}; give a .ckpt file")
    if not path.is_file():
        raise DatasetNotFoundError(f"checkpoint {path} does not exist")
    return path


@dataclass
class LoadedRun:
    """A checkpoint rebuilt as its task (weights loaded, eval mode) and its datamodule."""

    label: str
    checkpoint: Path
    config_path: Path
    task: Any
    datamodule: Any

    @property
    def model_name(self) -> str:
        """The backbone's model name (``srm_cifar_resnet20``)."""
        backbone = self.task.hparams.get("backbone")
        return str(backbone["name"] if isinstance(backbone, dict) else getattr(backbone, "name", "model"))


def build_from_config(config_path: Path, overrides: Sequence[str] = ()) -> Any:
    """Instantiate task, datamodule (and an inert trainer) from a config as ``cli.py`` would.

    A saved run config also holds ``fit``'s own arguments (``ckpt_path``), which
    the subcommand-less parser rejects: they are dropped from a temporary copy.
    ``overrides`` are command-line arguments applied after the config (``--model.init_args.x y``).
    """
    from recal.cli import create_cli

    with open(config_path) as f:
        config = yaml.safe_load(f) or {}
    for key in FIT_ONLY_KEYS:
        config.pop(key, None)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / Path(config_path).name
        copy.write_text(yaml.safe_dump(config, sort_keys=False))
        # nested files (``data: ../data/x.yaml``) in a hand-written config resolve from its folder
        source = copy if _self_contained(config) else Path(config_path)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                return create_cli(["--config", str(source), *overrides, *SAFE_TRAINER], run=False)
            except SystemExit as exc:  # the parser already printed a one-line error
                raise InvalidOptionError(f"cannot rebuild the run from {config_path} (see the error above)") from exc


def _self_contained(config: dict[str, Any]) -> bool:
    return not any(isinstance(value, str) and value.endswith((".yaml", ".yml")) for value in config.values())


def load_run(path: str | Path, config: Optional[str] = None, which: str = "best", label: Optional[str] = None) -> LoadedRun:
    """Rebuild a checkpoint (or a run folder's ``<which>.ckpt``) with the run's ``config.yaml``.

    ``config`` overrides the config found beside the checkpoint
    (``<run>/config.yaml`` for ``<run>/checkpoints/x.ckpt``).
    """
    ckpt = checkpoint_file(path, which)
    if config is None:
        candidates = [ckpt.parent.parent / CONFIG_FILE, ckpt.parent / CONFIG_FILE]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetNotFoundError(f"no config.yaml beside {ckpt}; give the run's config with --config")
        config_path = found
    else:
        from recal.config_paths import resolve_config

        config_path = Path(resolve_config(config))
    cli = build_from_config(config_path)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        cli.model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as exc:
        raise CheckpointMismatchError(f"checkpoint {ckpt} does not fit the model of {config_path}: {exc}") from exc
    run = LoadedRun("", ckpt, config_path, cli.model.eval(), cli.datamodule)
    run.label = label or run.model_name
    return run


def unique_labels(labels: Sequence[str], paths: Sequence[Path]) -> list[str]:
    """``labels`` with the run folder appended where two runs share one (``srm_x (version_1)``)."""
    counts = {label: labels.count(label) for label in labels}
    out = []
    for label, path in zip(labels, paths):
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        out.append(label if counts[label] == 1 else f"{label} ({run.parent.name}/{run.name})")
    return out
