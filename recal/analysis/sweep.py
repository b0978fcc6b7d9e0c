"""Sweeps: one training run per (value of a config key, seed), and their table and chart.

A sweep runs ``cli.py fit --config C --<key> <value> --seed_everything <s>``
for every value and seed, each run in its own folder ``runs/<variant>/seed_<s>``
under the sweep's output folder, then *collects*: it finds every run folder
below a root, reads the variant's value from the run's saved ``config.yaml``
(never from the folder name, so runs launched elsewhere — multi-GPU jobs — are
collected the same way) and the final metrics from its ``metrics.csv``, and
writes one row per variant: mean ± sample std (n − 1) over seeds.
:func:`train_and_tabulate` and :func:`collect_and_tabulate` do either and write
``table.{csv,md}``, ``runs.csv`` and ``chart.{png,pdf}`` into one output folder.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import yaml
from rich.console import Console

from recal.analysis.runs import config_value, final_metrics, find_runs, output_dir, read_config
from recal.analysis.tables import fmt_mean_std, mean_std
from recal.config_paths import resolve_config
from recal.errors import InvalidOptionError, UserError
from recal.run_folder import refuse_other_options, resume_arguments

SWEEP_FILE = "sweep.yaml"
DONE_FILE = "finished_runs.txt"
METRICS = ("val/acc1", "val/acc5", "val/loss")
# Named sweeps of the SRM paper's ablations (``--preset``).
PRESETS: dict[str, tuple[str, list[Any]]] = {
    "pooling": ("model.backbone.pooling",
                [["avg"], ["std"], ["max"], ["avg", "std"], ["avg", "max"], ["avg", "std", "max"]]),
    "integration": ("model.backbone.integration", ["cfc", "mlp"]),
}


@dataclass
class SweepPlan:
    """What to run: ``config`` once per value of ``key`` and per seed, with extra CLI ``overrides``."""

    config: str
    key: str
    values: list[Any]
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=lambda: list(METRICS))

    def __post_init__(self) -> None:
        labels = [folder_name(variant_label(v)) for v in self.values]
        if len(set(labels)) != len(labels):
            raise InvalidOptionError(f"sweep values {self.values} repeat a variant; give each value once")
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidOptionError(f"sweep seeds {self.seeds} repeat a seed; give each seed once")


def variant_label(value: Any) -> str:
    """A variant's display name: ``avg+std`` for a pooling set, the value itself otherwise."""
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return "default" if value is None else str(value)


def folder_name(label: str) -> str:
    """``label`` made safe as one folder name."""
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", label) or "_"


def cli_value(value: Any) -> str:
    """``value`` as a command-line argument jsonargparse reads back (JSON is YAML)."""
    return value if isinstance(value, str) else json.dumps(value)


def display_value(value: Any) -> str:
    """``value`` as YAML flow text (``[avg, std]``, ``cfc``): how a config file would spell it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def run_arguments(plan: SweepPlan, value: Any, seed: int, runs_dir: Path) -> list[str]:
    """The ``cli.py`` arguments of one run, logging to ``runs_dir/<variant>/seed_<seed>``."""
    return ["fit", "--config", plan.config, f"--{plan.key}", cli_value(value), "--seed_everything", str(seed),
            *plan.overrides,
            "--trainer.default_root_dir", str(runs_dir),
            "--trainer.logger.init_args.name", folder_name(variant_label(value)),
            "--trainer.logger.init_args.version", f"seed_{seed}"]


def launch_inprocess(args: list[str]) -> int:
    """Run ``cli.py`` in this process (fast; not for DDP strategies, which relaunch sys.argv)."""
    from recal.cli import main

    try:
        return main(args)
    except SystemExit as exc:  # the parser's one-line error exits
        return int(exc.code or 0)


def launch_subprocess(args: list[str]) -> int:
    """Run ``python cli.py`` in a child process (DDP configs, isolation); its output is shown live."""
    cli = Path(__file__).resolve().parents[2] / "cli.py"
    if not cli.is_file():
        raise InvalidOptionError(f"--launcher subprocess needs {cli}; use --launcher inprocess")
    return subprocess.run([sys.executable, str(cli), *args], stdin=subprocess.DEVNULL).returncode


def check_values(plan: SweepPlan) -> None:
    """Build every variant's task and data (nothing trained or written): a bad value stops the sweep first."""
    from recal.cli import create_cli, find_user_error

    for value in plan.values:
        args = ["--config", plan.config, f"--{plan.key}", cli_value(value), *plan.overrides,
                "--trainer.logger", "false"]
        try:
            create_cli(args, run=False)
        except SystemExit as exc:  # the parser printed its one-line error
            raise InvalidOptionError(f"sweep value {display_value(value)} of {plan.key} is not valid "
                                     "(see the error above); nothing was trained") from exc
        except (UserError, ValueError) as error:
            user_error = find_user_error(error)
            if user_error is None:
                raise
            raise InvalidOptionError(f"sweep value {display_value(value)} of {plan.key}: {user_error}; "
                                     "nothing was trained") from error


def run_sweep(plan: SweepPlan, out: Path, launch: Callable[[list[str]], int] = launch_inprocess,
              say: Callable[[str], None] = print) -> None:
    """Train every (value, seed) of ``plan`` under ``out/runs``; finished runs are skipped, unfinished ones resumed.

    Every value is checked before the first run trains; an ``out`` of another plan is refused.
    Writes ``out/sweep.yaml`` first, so :func:`collect` knows the key and the variants' order
    even for a sweep that was interrupted.
    """
    refuse_other_options(out / SWEEP_FILE, asdict(plan), "a sweep")
    check_values(plan)
    (out / SWEEP_FILE).write_text(yaml.safe_dump(asdict(plan), sort_keys=False))
    runs_dir = out / "runs"
    # A run counts as finished only once its launch returned 0 (last.ckpt alone
    # also exists after an interrupted multi-epoch run).
    done_file = out / DONE_FILE
    done = set(done_file.read_text().split()) if done_file.is_file() else set()
    jobs = [(v, s) for v in plan.values for s in plan.seeds]
    for i, (value, seed) in enumerate(jobs, 1):
        folder = runs_dir / folder_name(variant_label(value)) / f"seed_{seed}"
        name = folder.relative_to(out).as_posix()
        header = f"[{i}/{len(jobs)}] {plan.key}={variant_label(value)} seed={seed}"
        if name in done and folder.is_dir():
            say(f"{header}: finished before, skipped ({folder})")
            continue
        resume = resume_arguments(folder)
        say(f"{header} → {folder}" + (" (resumed)" if resume else ""))
        code = launch([*run_arguments(plan, value, seed, runs_dir), *resume])
        if code != 0:
            raise UserError(f"run {header} failed with exit status {code}; its output is above ({folder})")
        with open(done_file, "a") as f:
            f.write(name + "\n")


def read_plan(root: Path) -> Optional[dict[str, Any]]:
    """The ``sweep.yaml`` of a sweep folder (``root`` or its parent), if there is one."""
    for candidate in (root / SWEEP_FILE, root.parent / SWEEP_FILE):
        if candidate.is_file():
            return yaml.safe_load(candidate.read_text())
    return None


@dataclass
class SweepTable:
    """Collected runs: per-run rows and per-variant rows (mean / std over seeds)."""

    key: str
    metrics: list[str]
    runs: list[dict[str, Any]]
    variants: list[dict[str, Any]]


def collect(root: Path, key: Optional[str] = None, values: Optional[Sequence[Any]] = None,
            metrics: Optional[Sequence[str]] = None) -> SweepTable:
    """Read every run below ``root``: its variant value (``key`` in config.yaml), seed and final metrics.

    ``key``, the variants' order (``values``) and ``metrics`` default to the
    sweep's ``sweep.yaml`` when ``root`` is (inside) a sweep folder; variants
    not in ``values`` follow in sorted order.
    """
    root = Path(root)
    plan = read_plan(root) or {}
    key = key or plan.get("key")
    if not key:
        raise InvalidOptionError(f"no sweep.yaml in {root}: give the config key that tells the variants apart with --key")
    order = [variant_label(v) for v in (values if values is not None else plan.get("values", []))]
    metrics = list(metrics or plan.get("metrics") or METRICS)
    runs = []
    for run in find_runs(root):
        config = read_config(run)
        value = config_value(config, key)
        runs.append({"variant": variant_label(value), key: display_value(value), "seed": config.get("seed_everything"),
                     **final_metrics(run, metrics), "run": run.relative_to(root).as_posix()})
    if not runs:
        raise InvalidOptionError(f"no run folders (config.yaml + metrics.csv) under {root}")
    labels = list(dict.fromkeys([label for label in order if any(r["variant"] == label for r in runs)]
                                + sorted({r["variant"] for r in runs} - set(order))))
    runs.sort(key=lambda r: (labels.index(r["variant"]), r["seed"] if r["seed"] is not None else -1, r["run"]))
    variants = []
    for label in labels:
        mine = [r for r in runs if r["variant"] == label]
        row: dict[str, Any] = {"variant": label, key: mine[0][key], "runs": len(mine),
                               "seeds": " ".join(str(r["seed"]) for r in mine)}
        for metric in metrics:
            row[f"{metric} mean"], row[f"{metric} std"] = mean_std(r[metric] for r in mine)
        variants.append(row)
    return SweepTable(key, metrics, runs, variants)


def is_accuracy(metric: str) -> bool:
    """Accuracies (``val/acc1``, ``test_in/acc5``) are shown in percent."""
    return metric.rsplit("/", 1)[-1].startswith("acc")


def _shown(row: dict[str, Any], key: str, metrics: Sequence[str]) -> dict[str, Any]:
    """A variant row formatted for Markdown: accuracies in % (2 decimals), others to 4 decimals."""
    shown = {"variant": row["variant"], key: row[key], "runs": row["runs"]}
    for m in metrics:
        percent = is_accuracy(m)
        shown[m + (" (%)" if percent else "")] = fmt_mean_std(row[f"{m} mean"], row[f"{m} std"],
                                                              100 if percent else 1, 2 if percent else 4)
    return shown


def write_outputs(table: SweepTable, folder: Path, title: str) -> list[Path]:
    """``table.csv`` / ``table.md`` (per variant), ``runs.csv`` (per run) and ``chart.png`` (first metric)."""
    from recal.analysis import plots, tables

    written = [tables.write_csv(table.variants, folder / "table.csv"), tables.write_csv(table.runs, folder / "runs.csv")]
    note = ("Final logged value of each metric per run (metrics.csv), mean ± sample std (n − 1) over seeds; "
            "the variant's value is read from each run's config.yaml. Runs per variant: see runs.csv.")
    written.append(tables.write_markdown([_shown(r, table.key, table.metrics) for r in table.variants],
                                         folder / "table.md", title, note))
    metric = table.metrics[0]
    scale = 100 if is_accuracy(metric) else 1
    points = [[r[metric] * scale for r in table.runs if r["variant"] == v["variant"] and not math.isnan(r[metric])]
              for v in table.variants]
    written.append(plots.bar_chart([v["variant"] for v in table.variants],
                                   [v[f"{metric} mean"] * scale for v in table.variants],
                                   [v[f"{metric} std"] * scale for v in table.variants], points,
                                   metric + (" (%)" if scale == 100 else ""), title, folder / "chart.png",
                                   ceiling=100.0 if scale == 100 else None))
    return written


def plan_from_options(config: Optional[str], preset: Optional[str], key: Optional[str], values: Optional[Sequence[Any]],
                      seeds: Sequence[int], overrides: Mapping[str, Any], metrics: Optional[Sequence[str]],
                      extra: Sequence[str] = ()) -> SweepPlan:
    """The sweep a command line asks for: ``preset``'s key and values unless ``key`` / ``values`` are given.

    ``overrides`` are config keys set in every run; ``extra`` are further ``cli.py`` arguments.
    """
    preset_key, preset_values = PRESETS[preset] if preset else (None, None)
    key, values = key or preset_key, values if values is not None else preset_values
    if not config or not key or not values:
        raise InvalidOptionError("a sweep needs --config, and --key with --values (or --preset); "
                                 "use --collect DIR to tabulate existing runs")
    arguments = [arg for k, v in overrides.items() for arg in (f"--{k}", cli_value(v))] + list(extra)
    return SweepPlan(resolve_config(config), key, list(values), list(seeds), arguments, list(metrics or METRICS))


def train_and_tabulate(plan: SweepPlan, out: Optional[str] = None, launcher: str = "inprocess") -> Path:
    """Train every run of ``plan`` in ``out`` (default ``runs/sweep/<timestamp>``), then collect and write its tables.

    ``launcher`` is ``inprocess`` (fast) or ``subprocess`` (one ``python cli.py`` per run, for DDP).
    """
    console = Console(stderr=True)
    folder = output_dir("sweep", out)
    launch = launch_inprocess if launcher == "inprocess" else launch_subprocess
    run_sweep(plan, folder, launch, say=lambda text: console.print(text, style="bold", highlight=False, soft_wrap=True))
    table = collect(folder)
    write_outputs(table, folder, _title(plan.config, table.key))
    return folder


def collect_and_tabulate(root: str | Path, key: Optional[str] = None, values: Optional[Sequence[Any]] = None,
                         metrics: Optional[Sequence[str]] = None, out: Optional[str] = None) -> Path:
    """Tabulate the run folders under ``root`` (see :func:`collect`) into ``out``, without training."""
    root = Path(root)
    table = collect(root, key, values, metrics)
    plan = read_plan(root) or {}
    folder = output_dir("sweep", out)
    write_outputs(table, folder, _title(plan.get("config"), table.key))
    return folder


def _title(config: Optional[str], key: str) -> str:
    return f"{Path(config).stem}: {key}" if config else key
