"""``python -m recal.commands.sweep``: train a config once per value of a config key and per seed, then tabulate.

Each run gets its own folder ``<out>/runs/<variant>/seed_<s>`` (the usual run
contract: config.yaml, metrics.csv, checkpoints/); then the final metrics are
collected into ``table.{csv,md}`` (one row per variant, mean ± std over seeds),
``runs.csv`` (one row per run) and a bar chart ``chart.{png,pdf}`` with error
bars (:mod:`recal.analysis.sweep`). ``--collect DIR`` tabulates existing run folders
without training (e.g. multi-GPU runs launched elsewhere); a run's variant is read from
its saved config.yaml. Arguments after ``--`` go to every ``cli.py fit`` run. A sweep
given the same ``--out`` again skips its finished runs (resume).

    python -m recal.commands.sweep --config quickstart.yaml --preset pooling --seeds '[0, 1]'
    python -m recal.commands.sweep --config quickstart.yaml --key model.backbone.name \\
        --values '[cifar_resnet20, se_cifar_resnet20, srm_cifar_resnet20]' -- --trainer.max_epochs 7
    python -m recal.commands.sweep --collect runs/sweep/20250101-120000
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from jsonargparse import ActionConfigFile

from recal.analysis.sweep import METRICS, PRESETS, collect_and_tabulate, plan_from_options, train_and_tabulate
from recal.commands.parser import CommandParser, finish_command, parse_command, split_passed_on
from recal.config_paths import resolve_config


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.commands.sweep``."""
    parser = CommandParser(prog="python -m recal.commands.sweep", description=__doc__.split("\n\n")[0])
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


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the output folder last."""
    argv, extra = split_passed_on(args)

    def work() -> Path:
        cfg = parse_command(build_parser(), _resolve_sweep_file(argv))
        if cfg.collect:
            return collect_and_tabulate(cfg.collect, cfg.key, cfg["values"], cfg.metrics, cfg.out)
        plan = plan_from_options(cfg.config, cfg.preset, cfg.key, cfg["values"], cfg.seeds, cfg.overrides,
                                 cfg.metrics, extra)
        return train_and_tabulate(plan, cfg.out, cfg.launcher)
    return finish_command(work, "table.md")


def _resolve_sweep_file(argv: list[str]) -> list[str]:
    # ``--sweep NAME`` is looked up like ``--config`` (a path, else under configs/)
    return [resolve_config(arg) if i and argv[i - 1] == "--sweep" else arg for i, arg in enumerate(argv)]


if __name__ == "__main__":
    sys.exit(main())
