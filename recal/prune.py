"""``python -m recal.prune``: channel pruning by recalibration weight, SE vs SRM (the SRM paper's analysis).

For each checkpoint (a ``.ckpt`` or a run folder; model and data from the
run's config.yaml, or ``--config``): the mean gate of every channel over the
validation set; then, at each fraction f, the ``round(f · C)`` channels with the
lowest mean gate in every gated block are zeroed through ``channel_mask`` and
the network is evaluated, beside a seeded random choice of as many channels.
Writes ``pruning.{csv,md}`` (top-1 / top-5 per checkpoint, method, seed and
fraction), ``mean_gates.csv`` (the ranking) and ``pruning.{png,pdf}`` (all
checkpoints on one plot) under ``--out``.

    python -m recal.prune runs/se/version_0 runs/srm/version_0
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from rich.console import Console
from rich.progress import Progress

from recal.command import CommandParser, finish_in_folder, parse_command
from recal.errors import InvalidOptionError


def prune(checkpoints: Sequence[str], out: Path, config: Optional[str] = None, which: str = "best",
          fractions: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), seeds: Sequence[int] = (0, 1, 2),
          limit_batches: Optional[int] = None, device: str = "auto", labels: Optional[Sequence[str]] = None) -> list[dict]:
    """Prune every checkpoint at every fraction (by gate and at random); write tables and the plot."""
    from recal.analysis.gates import block_label, not_applicable_reason
    from recal.analysis.pruning import prune_curves
    from recal.analysis.runs import load_run, resolve_device, unique_labels

    if any(not 0.0 <= f < 1.0 for f in fractions):
        raise InvalidOptionError(f"--fractions {list(fractions)}: each must be in [0, 1)")
    if labels and len(labels) != len(checkpoints):
        raise InvalidOptionError(f"--labels has {len(labels)} entries for {len(checkpoints)} checkpoints")
    console = Console(stderr=True)
    rows: list[dict[str, Any]] = []
    gate_rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    with Progress(console=console, transient=True) as progress:
        overall = progress.add_task("checkpoints", total=len(checkpoints))
        runs = []
        for path in checkpoints:
            progress.update(overall, description=f"loading {path}")
            runs.append(load_run(path, config, which))
        names = list(labels) if labels else unique_labels([r.label for r in runs], [r.checkpoint for r in runs])
        for run, name in zip(runs, names):
            reason = not_applicable_reason(run.task)
            if reason:
                console.print(f"{name}: {reason}")
                skipped.append(f"{name}: {reason}")
                progress.advance(overall)
                continue
            progress.update(overall, description=f"pruning {name}")
            curves, means = prune_curves(run.task, run.datamodule, fractions, seeds, resolve_device(device), limit_batches,
                                         progress, name)
            rows += [{"model": name, "checkpoint": str(run.checkpoint), **r} for r in curves]
            gate_rows += [{"model": name, "block": block_label(b), "channel": c, "mean_gate": float(v)}
                          for b, values in means.items() for c, v in enumerate(values)]
            progress.advance(overall)
    if not rows:
        raise InvalidOptionError("no checkpoint has gate modules to prune: " + "; ".join(skipped))
    write_outputs(rows, gate_rows, skipped, out, limit_batches)
    return rows


def write_outputs(rows: list[dict[str, Any]], gate_rows: list[dict[str, Any]], skipped: list[str], out: Path,
                  limit_batches: Optional[int]) -> None:
    """``pruning.csv`` (long), ``pruning.md`` (fraction × model/method), ``mean_gates.csv``, the plot."""
    from recal.analysis import plots, tables

    tables.write_csv(rows, out / "pruning.csv")
    tables.write_csv(gate_rows, out / "mean_gates.csv")
    models = list(dict.fromkeys(r["model"] for r in rows))
    fractions = list(dict.fromkeys(r["fraction"] for r in rows))
    shown, curves = [], []
    for f in fractions:
        line: dict[str, Any] = {"pruned per block": f"{100 * f:.0f} %"}
        for m in models:
            gate = [r for r in rows if r["model"] == m and r["fraction"] == f and r["method"] == "gate"]
            rand = [r["acc1"] for r in rows if r["model"] == m and r["fraction"] == f and r["method"] == "random"]
            line[f"{m}: lowest gate"] = f"{100 * gate[0]['acc1']:.2f}"
            line[f"{m}: random"] = tables.fmt_mean_std(*tables.mean_std(rand), scale=100)
        shown.append(line)
    for i, m in enumerate(models):
        mine = [r for r in rows if r["model"] == m]
        gate = [r["acc1"] for r in mine if r["method"] == "gate"]
        rand = [tables.mean_std(r["acc1"] for r in mine if r["method"] == "random" and r["fraction"] == f) for f in fractions]
        seeds = len({r["seed"] for r in mine if r["method"] == "random"})
        curves.append(plots.Curve(f"{m}: lowest mean gate", fractions, gate, color=f"C{i}"))
        curves.append(plots.Curve(f"{m}: random ({seeds} seeds, ±std)", fractions, [a for a, _ in rand],
                                  [s for _, s in rand], color=f"C{i}", dashed=True))
    subset = "the whole validation set" if limit_batches is None else f"the first {limit_batches} validation batches"
    note = (f"Top-1 (%) on {subset} after zeroing round(f·C) channels of every gated block through channel_mask: "
            "the channels with the lowest mean gate over that set, or random ones (mean ± std over seeds). "
            "0 % is the unpruned checkpoint on the same masked path. Top-5 and every seed: pruning.csv."
            + ("".join(f"\n\n{s}" for s in skipped)))
    tables.write_markdown(shown, out / "pruning.md", "Channel pruning by recalibration weight", note)
    plots.pruning_plot(curves, "pruning channels by mean gate vs at random", out / "pruning.png")


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.prune``."""
    parser = CommandParser(prog="python -m recal.prune", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=str, help="checkpoints or run folders (e.g. an SE and an SRM run)")
    parser.add_argument("--config", type=Optional[str], default=None,
                        help="the runs' config, as for cli.py (default: config.yaml of each run)")
    parser.add_argument("--which", type=Literal["best", "last"], default="best", help="checkpoint of a run folder")
    parser.add_argument("--fractions", type=list[float], default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
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
