"""``python -m recal.sweep``: train a config once per value of a config key and per seed, then tabulate.

Each run gets its own folder ``<out>/runs/<variant>/seed_<s>`` (the usual run
contract: config.yaml, metrics.csv, checkpoints/); then the final metrics are
collected into ``table.{csv,md}`` (one row per variant, mean ± std over seeds),
``runs.csv`` (one row per run) and a bar chart ``chart.{png,pdf}`` with error
bars. ``--collect DIR`` tabulates existing run folders without training (e.g.
multi-GPU runs launched elsewhere); a run's variant is read from its saved
config.yaml. Arguments after ``--`` go to every ``cli.py fit`` run. A sweep
given the same ``--out`` again skips its finished runs (resume).

    python -m recal.sweep --config quickstart.yaml --preset pooling --seeds '[0, 1]'
    python -m recal.sweep --config quickstart.yaml --key model.backbone.name \\
        --values '[cifar_resnet20, se_cifar_resnet20, srm_cifar_resnet20]' -- --trainer.max_epochs 7
    python -m recal.sweep --collect runs/sweep/20250101-120000
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from jsonargparse import ActionConfigFile
from rich.console import Console

from recal.command import CommandParser, finish_command
from recal.errors import InvalidOptionError


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.sweep``."""
    from recal.analysis.sweep import METRICS, PRESETS

    parser = CommandParser(prog="python -m recal.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action=ActionConfigFile, help="a YAML file with any of these options")
    parser.add_argument("--config", type=Optional[str], default=None, help="the training config, as for cli.py")
    parser.add_argument("--preset", type=Optional[Literal[tuple(PRESETS)]], default=None,
                        help="; ".join(f"{name}: {key} over {values}" for name, (key, values) in PRESETS.items()))
    parser.add_argument("--key", type=Optional[str], default=None, help="the config key to vary (model.backbone.pooling)")
    parser.add_argument("--values", type=Optional[list[Any]], default=None, help="its values, e.g. '[[avg], [avg, std]]'")
    parser.add_argument("--seeds", type=list[int], default=[0], help="seed_everything of each run, e.g. '[0, 1]'")
    parser.add_argument("--overrides", type=dict[str, Any], default={},
                        help="config keys set in every run, e.g. '{trainer.max_epochs: 7}'")
    parser.add_argument("--metrics", type=Optional[list[str]], default=None,
                        help=f"metrics to tabulate, the first one charted (default {list(METRICS)})")
    parser.add_argument("--launcher", type=Literal["inprocess", "subprocess"], default="inprocess",
                        help="inprocess (fast) or subprocess (one python cli.py per run; needed for DDP strategies)")
    parser.add_argument("--collect", type=Optional[str], default=None,
                        help="tabulate the run folders under this folder instead of training")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/sweep/<timestamp>)")
    return parser


def _plan(cfg: Any, extra: list[str]) -> Any:
    from recal.analysis.sweep import METRICS, PRESETS, SweepPlan, cli_value
    from recal.config_paths import resolve_config

    key, values = (PRESETS[cfg.preset] if cfg.preset else (None, None))
    key, values = cfg.key or key, cfg["values"] if cfg["values"] is not None else values
    if not cfg.config or not key or not values:
        raise InvalidOptionError("a sweep needs --config, and --key with --values (or --preset); "
                                 "use --collect DIR to tabulate existing runs")
    overrides = [arg for k, v in cfg.overrides.items() for arg in (f"--{k}", cli_value(v))] + extra
    return SweepPlan(resolve_config(cfg.config), key, list(values), list(cfg.seeds), overrides,
                     list(cfg.metrics or METRICS))


def sweep(cfg: Any, extra: list[str]) -> Path:
    """Train (unless collecting), collect and write the outputs; return the output folder."""
    from recal.analysis.runs import output_dir
    from recal.analysis.sweep import collect, launch_inprocess, launch_subprocess, read_plan, run_sweep, write_outputs

    console = Console(stderr=True)
    if cfg.collect:
        root = Path(cfg.collect)
        table = collect(root, cfg.key, cfg["values"], cfg.metrics)
        plan = read_plan(root) or {}
        folder = output_dir("sweep", cfg.out)
    else:
        plan_obj = _plan(cfg, extra)
        folder = output_dir("sweep", cfg.out)
        launch = launch_inprocess if cfg.launcher == "inprocess" else launch_subprocess
        run_sweep(plan_obj, folder, launch, say=lambda text: console.print(text, style="bold", highlight=False, soft_wrap=True))
        table = collect(folder)
        plan = {"config": plan_obj.config}
    title = f"{Path(plan['config']).stem}: {table.key}" if plan.get("config") else table.key
    write_outputs(table, folder, title)
    return folder


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the output folder last."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="jsonargparse")
    argv = list(sys.argv[1:] if args is None else args)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    return finish_command(lambda: sweep(build_parser().parse_args(_resolve_sweep_file(argv)), extra), "table.md")


def _resolve_sweep_file(argv: list[str]) -> list[str]:
    # ``--sweep NAME`` is looked up like ``--config`` (a path, else under configs/)
    from recal.config_paths import resolve_config

    return [resolve_config(arg) if i and argv[i - 1] == "--sweep" else arg for i, arg in enumerate(argv)]


if __name__ == "__main__":
    sys.exit(main())
