"""Train and test one DTD config on every official partition or cross-validation fold, and tabulate.

Each split is one ``cli.py fit`` followed by one ``cli.py test`` (in this process), logged
under the output folder as ``<split>/fit/`` (config.yaml, metrics.csv, checkpoints/) and
``<split>/fit/test/version_0/``. The same folder with the same options resumes: finished
splits are read back, an unfinished fit continues from its checkpoint; other options are
refused, naming them. Partition N tests the checkpoint with the best val/acc1 (valN) on
testN; fold i tests ``last.ckpt`` on fold i, because fold i is also its only validation set
and choosing the best epoch on it would flatter the result (``checkpoint`` overrides either).
:func:`write_results` writes ``results.csv`` and ``results.md``: one row per split, then mean
and sample standard deviation (n − 1) of test top-1; one split has no standard deviation
(an empty CSV cell, "—" in Markdown).
"""

from __future__ import annotations

import csv
import math
import shutil
from datetime import datetime
from pathlib import Path
from typing import Literal, NamedTuple, Optional, Sequence

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from recal import run_folder
from recal.analysis.tables import fmt_number, markdown_table, mean_std, write_csv
from recal.cli import main as cli_main
from recal.config_paths import CONFIG_ROOT, resolve_config
from recal.errors import InvalidOptionError
from recal.paths import make_folder

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
OPTIONS_FILE = "folds.yaml"
DONE_FILE = "finished_runs.txt"
Protocol = Literal["partition", "kfold"]


class FoldResult(NamedTuple):
    """One split's outcome: its name (``partition_3``, ``fold_0``) and test top-1 as a fraction."""

    name: str
    top1: float


def data_defaults(config: str | Path) -> dict:
    """The ``data.init_args`` of a cli.py config, following one nested data file."""
    path = Path(config)
    data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    if isinstance(data, str):
        data = yaml.safe_load((path.parent / data).read_text()) or {}
    return dict(data.get("init_args") or {})


def dtd_configs() -> list[str]:
    """The configs whose data has DTD's ``protocol`` option."""
    found = []
    for path in sorted(CONFIG_ROOT.rglob("*.yaml")):
        try:
            if "protocol" in data_defaults(path):
                found.append(path.relative_to(CONFIG_ROOT).as_posix())
        except (OSError, yaml.YAMLError, AttributeError):
            continue
    return found


def _split_args(protocol: str, split: int, folds: int) -> tuple[str, list[str]]:
    if protocol == "partition":
        return f"partition_{split}", ["--data.init_args.protocol", "partition", "--data.init_args.partition", str(split)]
    return f"fold_{split}", ["--data.init_args.protocol", "kfold", "--data.init_args.folds", str(folds),
                             "--data.init_args.fold", str(split)]


def _read_metric(metrics_csv: Path, key: str) -> float:
    with open(metrics_csv, newline="") as f:
        values = [float(row[key]) for row in csv.DictReader(f) if row.get(key)]
    if not values:
        raise InvalidOptionError(f"{metrics_csv} holds no {key!r}; pass --metric with a logged key")
    return values[-1]


def _options_file(out: Path, options: dict) -> None:
    """Write ``out/folds.yaml``, or refuse when an earlier runner wrote it with other options."""
    path = out / OPTIONS_FILE
    run_folder.refuse_other_options(path, options, "folds")
    if not path.is_file():
        path.write_text(yaml.safe_dump(options, sort_keys=False))


def _finished(out: Path) -> set[str]:
    done = out / DONE_FILE
    return set(done.read_text().split()) if done.is_file() else set()


def _mark_finished(out: Path, name: str) -> None:
    with open(out / DONE_FILE, "a") as f:
        f.write(name + "\n")


def run_folds(
    config: str,
    out: Path,
    protocol: Protocol,
    splits: Sequence[int],
    folds: int,
    checkpoint: Literal["best", "last"],
    metric: str = "test/acc1",
    cli_args: Sequence[str] = (),
    console: Console | None = None,
) -> list[FoldResult]:
    """Fit and test ``config`` on each of ``splits``; return one :class:`FoldResult` per split.

    Given the ``out`` of an earlier runner with the same options, finished splits are read
    back, an unfinished fit resumes from its checkpoint, and a finished fit is only tested.
    """
    console = console or Console(stderr=True)
    _options_file(out, {"config": str(config), "protocol": protocol, "splits": list(splits), "folds": folds,
                        "checkpoint": checkpoint, "metric": metric, "cli_args": list(cli_args)})
    results: list[FoldResult] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{protocol} runs", total=len(splits))
        for split in splits:
            name, data_args = _split_args(protocol, split, folds)
            fit_dir = out / name / "fit"
            test_dir = fit_dir / "test" / "version_0"
            common = ["--config", config, *data_args, *QUIET, "--trainer.default_root_dir", str(out),
                      "--trainer.logger.init_args.name", name]
            if f"{name}/fit" not in _finished(out):
                progress.update(task, description=f"{name}: fit")
                fit = ["fit", *common, "--trainer.logger.init_args.version", "fit", *cli_args,
                       *run_folder.resume_arguments(fit_dir)]
                if cli_main(fit) != 0:
                    raise InvalidOptionError(f"{name}: cli.py fit failed (see the message above)")
                _mark_finished(out, f"{name}/fit")
            ckpt = fit_dir / "checkpoints" / f"{checkpoint}.ckpt"
            if not ckpt.is_file():
                raise InvalidOptionError(f"{name}: fit wrote no {ckpt}")
            if f"{name}/test" not in _finished(out):
                progress.update(task, description=f"{name}: test")
                if test_dir.exists():  # a test that stopped half-way: its folder says nothing
                    shutil.rmtree(test_dir)
                if cli_main(["test", *common, "--trainer.logger.init_args.version", "version_0", *cli_args,
                             "--ckpt_path", str(ckpt)]) != 0:
                    raise InvalidOptionError(f"{name}: cli.py test failed (see the message above)")
                _mark_finished(out, f"{name}/test")
            results.append(FoldResult(name, _read_metric(test_dir / "metrics.csv", metric)))
            progress.console.print(f"{name}: {metric} = {100 * results[-1].top1:.2f} % ({checkpoint}.ckpt, step "
                                   f"{_global_step(ckpt)})")
            progress.advance(task)
    return results


def _global_step(path: Path) -> int:
    from recal.tasks.checkpoints import read_checkpoint

    return int(read_checkpoint(path)["global_step"])


def train_and_tabulate(config: str, out: Optional[str] = None, protocol: Optional[Protocol] = None,
                       folds: Optional[int] = None, splits: Optional[Sequence[int]] = None,
                       checkpoint: Optional[Literal["best", "last"]] = None, metric: str = "test/acc1",
                       cli_args: Sequence[str] = ()) -> Path:
    """Check the options against ``config``'s data, run every split (:func:`run_folds`), write the tables.

    Left at None, ``protocol`` and ``folds`` are the config's (else partition, 5 folds),
    ``splits`` all of them, ``checkpoint`` best for partitions and last for folds, ``out``
    ``runs/folds/<timestamp>``. Returns the output folder.
    """
    name, config = config, resolve_config(config)
    defaults = data_defaults(config)
    if "protocol" not in defaults:
        raise InvalidOptionError(f"config {name} trains on no DTD partitions or folds (its data has "
                                 f"no protocol option); recal.commands.folds runs DTD configs: {dtd_configs()}")
    protocol = protocol or defaults.get("protocol", "partition")
    folds = folds or int(defaults.get("folds", 5))
    valid = list(range(1, 11)) if protocol == "partition" else list(range(folds))
    splits = splits if splits is not None else valid
    bad = [s for s in splits if s not in valid]
    if bad or not splits:
        what = "DTD partition" if protocol == "partition" else "fold index"
        raise InvalidOptionError(f"{what} {bad[0] if bad else splits} outside {valid[0]}..{valid[-1]}"
                                 + ("" if protocol == "partition" else f" (k = {folds})"))
    checkpoint = checkpoint or ("best" if protocol == "partition" else "last")
    folder = Path(out or Path("runs") / "folds" / datetime.now().strftime("%Y%m%d-%H%M%S"))
    make_folder(folder, "output folder")
    results = run_folds(config, folder, protocol, splits, folds, checkpoint, metric, cli_args)
    title = f"{Path(config).stem}: DTD {protocol}" + (f" (k = {folds})" if protocol == "kfold" else "") \
        + f", {checkpoint}.ckpt"
    write_results(folder, results, title, metric)
    return folder


def write_results(out: Path, results: Sequence[FoldResult], title: str, metric: str = "test/acc1") -> None:
    """``results.csv`` (fractions) and ``results.md`` (percent): one row per split, then mean and std."""
    mean, std = mean_std(r.top1 for r in results)
    rows = [{"split": r.name, metric: f"{r.top1:.6f}"} for r in results]
    std_cell = None if math.isnan(std) else f"{std:.6f}"  # one split: no std, an empty cell
    write_csv([*rows, {"split": "mean", metric: f"{mean:.6f}"}, {"split": "std", metric: std_cell}], out / "results.csv")
    shown = [{"split": r.name, f"{metric} (%)": f"{100 * r.top1:.2f}"} for r in results]
    shown.append({"split": "mean ± std", f"{metric} (%)": f"{fmt_number(mean, 100)} ± {fmt_number(std, 100)}"})
    lines = [f"# {title}", "", markdown_table(shown).rstrip("\n"), "",
             f"std: sample standard deviation (n − 1) over {len(results)} split(s).", ""]
    (out / "results.md").write_text("\n".join(lines))
