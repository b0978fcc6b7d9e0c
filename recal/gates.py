"""``python -m recal.gates``: what the gates learned — per-block distributions, per-class means.

For each checkpoint (a ``.ckpt`` or a run folder; model and data from the
run's config.yaml, or ``--config``), one pass over the validation set records
every gate through the gate modules' hook. Writes, per checkpoint under
``<out>/<model>/``: ``gate_distributions.{csv,md,png,pdf}`` (violins and
quantiles per gated block), ``channel_means.csv`` and, for the blocks of the
last stage, ``per_class_<block>.csv`` and ``per_class_gates.{png,pdf}`` —
the mean gate of every channel per class as heatmaps (the SE paper's analysis).
``summary.md`` lists the checkpoints; SK and split attention, which have no
channel gate, are reported there as not applicable.

    python -m recal.gates runs/quickstart/version_0
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from rich.console import Console
from rich.progress import Progress

from recal.command import CommandParser, finish_in_folder, parse_command



def gate_statistics(checkpoints: Sequence[str], out: Path, config: Optional[str] = None, which: str = "best",
                    limit_batches: Optional[int] = None, device: str = "auto") -> list[dict[str, Any]]:
    """Record the gates of every checkpoint over its validation set and write the outputs."""
    from recal.analysis import tables
    from recal.analysis.gates import (GateRecorder, class_names, gated_blocks, last_stage, not_applicable_reason,
                                      write_gate_outputs)
    from recal.analysis.pruning import evaluate
    from recal.analysis.runs import load_run, resolve_device, unique_labels
    from recal.analysis.sweep import folder_name

    console = Console(stderr=True)
    summary: list[dict[str, Any]] = []
    with Progress(console=console, transient=True) as progress:
        runs = [load_run(path, config, which) for path in checkpoints]
        labels = unique_labels([r.label for r in runs], [r.checkpoint for r in runs])
        for run, label in zip(runs, labels):
            reason = not_applicable_reason(run.task)
            row = {"model": label, "checkpoint": str(run.checkpoint)}
            if reason:
                console.print(f"{label}: {reason}")
                summary.append({**row, "gated blocks": 0, "status": reason, "folder": None})
                continue
            blocks = gated_blocks(run.task)
            names = list(blocks)
            recorder = GateRecorder(blocks, run.task.hparams.num_classes, last_stage(names))
            metrics = evaluate(run.task, run.datamodule, resolve_device(device), limit_batches, recorder, progress,
                               f"{label}: recording gates")
            folder = out / folder_name(label)
            write_gate_outputs(recorder, names, class_names(run.datamodule, run.task.hparams.num_classes), label, folder)
            summary.append({**row, "gated blocks": len(names), "status": f"ok (val top-1 {100 * metrics['acc1']:.2f} %)",
                            "folder": folder.name})
    tables.write_markdown(summary, out / "summary.md", "Gate statistics",
                          "One folder per checkpoint: gate_distributions.* (all blocks), per_class_gates.* and "
                          "per_class_<block>.csv (last stage), channel_means.csv.")
    return summary


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.gates``."""
    parser = CommandParser(prog="python -m recal.gates", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=str, help="checkpoints or run folders")
    parser.add_argument("--config", type=Optional[str], default=None,
                        help="the runs' config, as for cli.py (default: config.yaml of each run)")
    parser.add_argument("--which", type=Literal["best", "last"], default="best", help="checkpoint of a run folder")
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
