"""``python -m recal.folds``: train and test every DTD partition or cross-validation fold.

    python -m recal.folds --config dtd/srm_r50_dtd.yaml                       # partitions 1..10
    python -m recal.folds --config dtd/srm_r50_dtd.yaml --protocol kfold      # 5 stratified folds
    python -m recal.folds --config dtd/srm_r50_dtd.yaml --splits '[1, 2]' -- --trainer.max_epochs 10

Each split is one ``cli.py fit`` followed by one ``cli.py test`` (in this process), logged
under ``--out`` (default ``runs/folds/<timestamp>``) as ``<split>/fit/`` (config.yaml,
metrics.csv, checkpoints/) and ``<split>/fit/test/version_0/``. The same ``--out`` with the
same options resumes: finished splits are read back, an unfinished fit continues from its
checkpoint; other options are refused, naming them. Partition N tests the checkpoint with the
best val/acc1 (valN) on testN; fold i tests ``last.ckpt`` on fold i, because fold i is also
its only validation set and choosing the best epoch on it would flatter the result
(``--checkpoint`` overrides either). Arguments after ``--`` go to every ``cli.py`` call.
Writes ``results.csv`` and ``results.md``: one row per split, then mean and standard deviation
(sample std, n − 1; 0 for one split) of test top-1; prints the output folder last.
"""

from __future__ import annotations

import csv
import math
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal, NamedTuple, Optional, Sequence

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from recal import run_folder
from recal.cli import main as cli_main
from recal.command import CommandParser as ArgumentParser
from recal.config_paths import resolve_config
from recal.errors import InvalidOptionError, UserError
from recal.paths import make_folder

__all__ = ["FoldResult", "data_defaults", "main", "run_folds", "write_results"]

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
    from recal.config_paths import CONFIG_ROOT

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


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def write_results(out: Path, results: Sequence[FoldResult], title: str, metric: str = "test/acc1") -> None:
    """``results.csv`` (fractions) and ``results.md`` (percent): one row per split, then mean and std."""
    mean, std = mean_std([r.top1 for r in results])
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", metric])
        writer.writerows([[r.name, f"{r.top1:.6f}"] for r in results])
        writer.writerow(["mean", f"{mean:.6f}"])
        writer.writerow(["std", f"{std:.6f}"])
    lines = [f"# {title}", "", f"| split | {metric} (%) |", "|---|---|"]
    lines += [f"| {r.name} | {100 * r.top1:.2f} |" for r in results]
    lines += [f"| mean ± std | {100 * mean:.2f} ± {100 * std:.2f} |", "",
              f"std: sample standard deviation (n − 1) over {len(results)} split(s).", ""]
    (out / "results.md").write_text("\n".join(lines))


def build_parser() -> ArgumentParser:
    """The runner's options (see the module docstring)."""
    parser = ArgumentParser(
        prog="python -m recal.folds",
        description="Fit and test a DTD config on every official partition (1..10) or k-fold fold; write "
                    "results.md / results.csv (per split, mean ± std) under --out. Arguments after -- go to "
                    "every cli.py call.")
    parser.add_argument("--config", type=str, required=True, help="cli.py config of a DTD run (resolved like cli.py)")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/folds/<timestamp>)")
    parser.add_argument("--protocol", type=Optional[Protocol], default=None,
                        help="partition (official 1..10) or kfold; default: the config's data.protocol")
    parser.add_argument("--folds", type=Optional[int], default=None, help="k of k-fold (default: the config's, else 5)")
    parser.add_argument("--splits", type=Optional[list[int]], default=None,
                        help="partitions (1..10) or folds (0..k-1) to run; default all")
    parser.add_argument("--checkpoint", type=Optional[Literal["best", "last"]], default=None,
                        help="checkpoint to test; default best for partitions, last for folds")
    parser.add_argument("--metric", type=str, default="test/acc1", help="metric to tabulate")
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """Parse ``args`` (default ``sys.argv[1:]``), run every split, write the tables; return the exit status."""
    argv = list(sys.argv[1:] if args is None else args)
    cli_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    options = build_parser().parse_args(argv)
    try:
        config = resolve_config(options.config)
        defaults = data_defaults(config)
        if "protocol" not in defaults:
            raise InvalidOptionError(f"config {options.config} trains on no DTD partitions or folds (its data has "
                                     f"no protocol option); recal.folds runs DTD configs: {dtd_configs()}")
        protocol = options.protocol or defaults.get("protocol", "partition")
        folds = options.folds or int(defaults.get("folds", 5))
        valid = list(range(1, 11)) if protocol == "partition" else list(range(folds))
        splits = options.splits if options.splits is not None else valid
        bad = [s for s in splits if s not in valid]
        if bad or not splits:
            what = "DTD partition" if protocol == "partition" else "fold index"
            raise InvalidOptionError(f"{what} {bad[0] if bad else splits} outside {valid[0]}..{valid[-1]}"
                                     + ("" if protocol == "partition" else f" (k = {folds})"))
        checkpoint = options.checkpoint or ("best" if protocol == "partition" else "last")
        out = Path(options.out or Path("runs") / "folds" / datetime.now().strftime("%Y%m%d-%H%M%S"))
        make_folder(out, "output folder")
        results = run_folds(config, out, protocol, splits, folds, checkpoint, options.metric, cli_args)
        title = f"{Path(config).stem}: DTD {protocol}" + (f" (k = {folds})" if protocol == "kfold" else "") \
            + f", {checkpoint}.ckpt"
        write_results(out, results, title, options.metric)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((out / "results.md").read_text())
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
