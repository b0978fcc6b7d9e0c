"""``python -m recal.commands.gates``: what the gates learned — per-block distributions, per-class means.

For each checkpoint (a ``.ckpt`` or a run folder; model and data from the
run's config.yaml, or ``--config``), one pass over the validation set records
every gate through the gate modules' hook (:mod:`recal.analysis.gates`). Writes, per
checkpoint under ``<out>/<model>/``: ``gate_distributions.{csv,md,png,pdf}`` (violins and
quantiles per gated block), ``channel_means.csv`` and, for the blocks of the
last stage, ``per_class_<block>.csv`` and ``per_class_gates.{png,pdf}`` —
the mean gate of every channel per class as heatmaps (the SE paper's analysis).
``summary.md`` lists the checkpoints; SK and split attention, which have no
channel gate, are reported there as not applicable.

    python -m recal.commands.gates runs/quickstart/version_0
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from recal.analysis.gates import gate_statistics
from recal.commands.parser import CommandParser, finish_in_folder, parse_command


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.commands.gates``."""
    parser = CommandParser(prog="python -m recal.commands.gates", description=__doc__.split("\n\n")[0])
    parser.add_checkpoint_arguments("checkpoints or run folders")
    parser.add_argument("--limit_batches", type=Optional[int], default=None, help="use only the first N validation batches")
    parser.add_argument("--device", type=str, default="auto", help="auto (cuda when available), cpu, cuda, …")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/gates/<timestamp>)")
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the output folder last."""
    cfg = parse_command(build_parser(), args)
    return finish_in_folder("gates", cfg.out, lambda folder: gate_statistics(
        cfg.checkpoints, folder, cfg.config, cfg.which, cfg.limit_batches, cfg.device), "summary.md")


if __name__ == "__main__":
    sys.exit(main())
