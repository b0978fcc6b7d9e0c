"""``python -m recal.commands.folds``: train and test every DTD partition or cross-validation fold.

    python -m recal.commands.folds --config dtd/srm_r50_dtd.yaml                       # partitions 1..10
    python -m recal.commands.folds --config dtd/srm_r50_dtd.yaml --protocol kfold      # 5 stratified folds
    python -m recal.commands.folds --config dtd/srm_r50_dtd.yaml --splits '[1, 2]' -- --trainer.max_epochs 10

Each split is one ``cli.py fit`` followed by one ``cli.py test`` (in this process), logged
under ``--out`` (default ``runs/folds/<timestamp>``) as ``<split>/fit/`` (config.yaml,
metrics.csv, checkpoints/) and ``<split>/fit/test/version_0/``. The same ``--out`` with the
same options resumes: finished splits are read back, an unfinished fit continues from its
checkpoint; other options are refused, naming them. Partition N tests the checkpoint with the
best val/acc1 (valN) on testN; fold i tests ``last.ckpt`` on fold i, because fold i is also
its only validation set and choosing the best epoch on it would flatter the result
(``--checkpoint`` overrides either). Arguments after ``--`` go to every ``cli.py`` call.
Writes ``results.csv`` and ``results.md`` (:mod:`recal.analysis.folds`): one row per split,
then mean and sample standard deviation (n − 1; none for one split: an empty CSV cell, "—"
in Markdown) of test top-1; prints the output folder last.
"""

from __future__ import annotations

import sys
from typing import Literal, Optional, Sequence

from recal.analysis.folds import Protocol, train_and_tabulate
from recal.commands.parser import CommandParser, finish_command, parse_command, split_passed_on


def build_parser() -> CommandParser:
    """The runner's options (see the module docstring)."""
    parser = CommandParser(
        prog="python -m recal.commands.folds",
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
    argv, cli_args = split_passed_on(args)
    options = parse_command(build_parser(), argv)
    return finish_command(lambda: train_and_tabulate(options.config, options.out, options.protocol, options.folds,
                                                     options.splits, options.checkpoint, options.metric, cli_args),
                          "results.md")


if __name__ == "__main__":
    sys.exit(main())
