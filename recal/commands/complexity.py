"""``python -m recal.commands.complexity``: parameters and multiply-adds of models, beside the papers' figures.

Counts model names and configs with :func:`recal.analysis.complexity.complexity` (how it
counts: that module's docstring). With no model or config given, the table is the papers'
comparison (ResNet-50/101 with SE, GE and SRM). Writes ``complexity.{csv,md}`` and
``complexity.{png,pdf}`` under ``--out``.

    python -m recal.commands.complexity
    python -m recal.commands.complexity srm_resnet50 sknet50 cifar/srm_resnet56_c10.yaml --input_size 224
"""

from __future__ import annotations

import sys
from typing import Literal, Optional, Sequence

from recal.analysis.complexity import complexity
from recal.commands.parser import CommandParser, finish_in_folder, parse_command


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.commands.complexity``."""
    parser = CommandParser(prog="python -m recal.commands.complexity", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", type=str, default=[],
                        help="model names (srm_resnet50) and/or configs (*.yaml); none: the eight paper rows")
    parser.add_argument("--config", type=Optional[str], default=None, help="a training config, as for cli.py")
    parser.add_argument("--input_size", type=Optional[int], default=None,
                        help="image side (default: the config's input_size, else 224 ImageNet / 32 CIFAR)")
    parser.add_argument("--num_classes", type=Optional[int], default=None,
                        help="classes for model names (default 1000 ImageNet / 10 CIFAR); configs use their data's")
    parser.add_argument("--layout", type=Literal["v1", "as_built"], default="v1",
                        help="v1: ImageNet ResNets with the stride in the 1×1 (the papers' FLOPs); as_built: as configured")
    parser.add_argument("--full", type=bool, default=True, help="also count fvcore's default (all ops) total")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/complexity/<timestamp>)")
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the output folder last."""
    cfg = parse_command(build_parser(), args)
    targets = [*cfg.targets, *([cfg.config] if cfg.config else [])]
    return finish_in_folder("complexity", cfg.out, lambda folder: complexity(
        targets, folder, cfg.input_size, cfg.num_classes, cfg.layout, cfg.full), "complexity.md")


if __name__ == "__main__":
    sys.exit(main())
