"""``python -m recal.commands.pruning``: channel pruning by recalibration weight, SE vs SRM (the SRM paper's analysis).

For each checkpoint (a ``.ckpt`` or a run folder; model and data from the
run's config.yaml, or ``--config``): the mean gate of every channel over the
validation set; then, at each fraction f, the ``round(f · C)`` channels with the
lowest mean gate in every gated block are zeroed through ``channel_mask`` and
the network is evaluated, beside a seeded random choice of as many channels
(:mod:`recal.analysis.pruning`). Writes ``pruning.{csv,md}`` (top-1 / top-5 per
checkpoint, method, seed and fraction), ``mean_gates.csv`` (the ranking) and
``pruning.{png,pdf}`` (all checkpoints on one plot) under ``--out``.

    python -m recal.commands.pruning runs/se/version_0 runs/srm/version_0
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from recal.analysis.pruning import FRACTIONS, prune
from recal.commands.parser import CommandParser, finish_in_folder, parse_command


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.commands.pruning``."""
    parser = CommandParser(prog="python -m recal.commands.pruning", description=__doc__.split("\n\n")[0])
    parser.add_checkpoint_arguments("checkpoints or run folders (e.g. an SE and an SRM run)")
    parser.add_argument("--fractions", type=list[float], default=list(FRACTIONS),
                        help="fractions of each block's channels to prune")
    parser.add_argument("--seeds", type=list[int], default=[0, 1, 2], help="seeds of the random-pruning baseline")
    parser.add_argument("--labels", type=Optional[list[str]], default=None, help="legend names (default: model names)")
    parser.add_argument("--limit_batches", type=Optional[int], default=None, help="use only the first N validation batches")
    parser.add_argument("--device", type=str, default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, …")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/prune/<timestamp>)")
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the output folder last."""
    cfg = parse_command(build_parser(), args)
    return finish_in_folder("prune", cfg.out, lambda folder: prune(
        cfg.checkpoints, folder, cfg.config, cfg.which, cfg.fractions, cfg.seeds, cfg.limit_batches, cfg.device,
        cfg.labels), "pruning.md")


if __name__ == "__main__":
    sys.exit(main())
