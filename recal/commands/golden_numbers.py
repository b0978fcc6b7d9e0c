"""``python -m recal.commands.golden_numbers``: count every model and backbone config, write the golden file.

Writes ``tests/golden_numbers.csv`` (or ``--out``): one row per model name, CMPE-SE variant
and config under ``configs/`` that builds a backbone, with its classes, input side, layout,
parameters and multiply-adds as the complexity command counts them
(:mod:`recal.analysis.golden_numbers`). Counting all of them takes about ten minutes on two
CPU cores. Rewrite the file only when an architecture changed on purpose, and say why.

    python -m recal.commands.golden_numbers
    python -m recal.commands.golden_numbers --targets '[srm_resnet50, quickstart.yaml]' --out /tmp/golden.csv
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from recal.analysis.golden_numbers import GOLDEN_FILE, write_golden
from recal.commands.parser import CommandParser, finish_command, parse_command


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.commands.golden_numbers``."""
    parser = CommandParser(prog="python -m recal.commands.golden_numbers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=Optional[list[str]], default=None,
                        help="count only these model names, name/variant or configs (default: all of them)")
    parser.add_argument("--out", type=str, default=str(GOLDEN_FILE), help="the CSV file to write")
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the file written last."""
    cfg = parse_command(build_parser(), args)
    return finish_command(lambda: write_golden(cfg.out, cfg.targets))


if __name__ == "__main__":
    sys.exit(main())
