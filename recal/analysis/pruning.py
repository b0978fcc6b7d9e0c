"""Channel pruning by recalibration weight, through the gate modules' ``channel_mask``.

The SRM paper prunes, in every gated block, the channels whose mean gate over
the validation set is lowest, and compares the accuracy drop of SE and SRM
networks: a module whose gates separate useful from useless channels loses
less. Here fraction f zeroes ``round(f · C)`` channels (Python's ``round``) in
each gated block of C channels by setting their ``channel_mask`` entries to 0;
nothing else in the network changes. (CBAM ranks by its channel gate; a masked channel
is zero before its spatial half pools the map, as a channel gate of 0 would make it, so
that half's (N, 1, H, W) gate is computed from the pruned map and is not itself pruned.)
A random choice of the same number of channels per block (seeded) is the baseline.
Fraction 0 runs the same masked path with all-ones masks, so it equals a plain
validation of the checkpoint. :func:`prune` runs that for every checkpoint given and
writes ``pruning.{csv,md}`` (top-1 / top-5 per checkpoint, method, seed and fraction),
``mean_gates.csv`` (the ranking) and ``pruning.{png,pdf}`` (all checkpoints on one plot).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from torch import Tensor

from recal.analysis import tables
from recal.analysis.gates import GateRecorder, block_label, gated_blocks, not_applicable_reason
from recal.analysis.runs import load_run, resolve_device, unique_labels
from recal.analysis.validation import evaluate
from recal.errors import InvalidOptionError
from recal.layers.gate import ChannelGate

FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def pruned_count(fraction: float, channels: int) -> int:
    """How many of a block's ``channels`` fraction ``fraction`` prunes: ``round(f · C)``."""
    return int(round(fraction * channels))


def lowest_gate_masks(channel_means: Mapping[str, np.ndarray], fraction: float) -> dict[str, Tensor]:
    """Per block, a mask that zeroes the ``round(f · C)`` channels with the lowest mean gate."""
    masks = {}
    for name, means in channel_means.items():
        mask = torch.ones(len(means))
        # stable sort: ties go to the lower channel index, so the result is reproducible
        order = np.argsort(np.asarray(means), kind="stable")
        mask[torch.from_numpy(order[: pruned_count(fraction, len(means))].copy())] = 0.0
        masks[name] = mask
    return masks


def random_masks(channels: Mapping[str, int], fraction: float, seed: int) -> dict[str, Tensor]:
    """Per block, a mask that zeroes ``round(f · C)`` channels drawn at random (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for name, count in channels.items():
        mask = torch.ones(count)
        mask[torch.randperm(count, generator=generator)[: pruned_count(fraction, count)]] = 0.0
        masks[name] = mask
    return masks


@contextlib.contextmanager
def masked(blocks: Mapping[str, ChannelGate], masks: Mapping[str, Tensor]) -> Iterator[None]:
    """Set each block's ``channel_mask`` (all ones where ``masks`` has none); restore afterwards."""
    saved = {name: gate.channel_mask.clone() for name, gate in blocks.items()}
    try:
        for name, gate in blocks.items():
            mask = masks.get(name)
            gate.channel_mask.copy_(torch.ones_like(gate.channel_mask) if mask is None else mask)
        yield
    finally:
        for name, gate in blocks.items():
            gate.channel_mask.copy_(saved[name])


def prune_curves(task: Any, datamodule: Any, fractions: Sequence[float] = FRACTIONS, seeds: Sequence[int] = (0, 1, 2),
                 device: torch.device = torch.device("cpu"), limit_batches: Optional[int] = None,
                 progress: Any = None, label: str = "") -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Evaluate ``task`` with the lowest-gate and random channels of every block masked.

    Returns one row per (method, seed, fraction) — method ``gate`` (seed empty)
    or ``random`` — with ``acc1``, ``acc5`` and the number of channels pruned,
    and the per-block mean gates the ranking used (from the fraction-0 pass).
    """
    blocks = gated_blocks(task)
    channels = {name: gate.channels for name, gate in blocks.items()}
    total_channels = sum(channels.values())
    recorder = GateRecorder(blocks)
    # Fraction 0: all-ones masks on the same path; it also measures the mean gates.
    with masked(blocks, {}):
        base = evaluate(task, datamodule, device, limit_batches, recorder, progress, f"{label} f=0 (mean gates)")
    means = {name: stats.channel_means() for name, stats in recorder.stats.items()}

    def row(method: str, seed: Optional[int], fraction: float, result: Mapping[str, float]) -> dict[str, Any]:
        pruned = sum(pruned_count(fraction, c) for c in channels.values())
        return {"method": method, "seed": seed, "fraction": fraction, "pruned_channels": pruned,
                "total_channels": total_channels, "acc1": result["acc1"], "acc5": result["acc5"]}

    rows = []
    for fraction in fractions:
        if fraction == 0:
            rows.append(row("gate", None, 0.0, base))
            rows += [row("random", seed, 0.0, base) for seed in seeds]  # the same all-ones masks
            continue
        with masked(blocks, lowest_gate_masks(means, fraction)):
            rows.append(row("gate", None, fraction, evaluate(task, datamodule, device, limit_batches,
                                                              progress=progress, description=f"{label} f={fraction:g} gate")))
        for seed in seeds:
            with masked(blocks, random_masks(channels, fraction, seed)):
                rows.append(row("random", seed, fraction, evaluate(
                    task, datamodule, device, limit_batches, progress=progress,
                    description=f"{label} f={fraction:g} random seed {seed}")))
    return rows, means


def prune(checkpoints: Sequence[str], out: Path, config: Optional[str] = None, which: str = "best",
          fractions: Sequence[float] = FRACTIONS, seeds: Sequence[int] = (0, 1, 2),
          limit_batches: Optional[int] = None, device: str = "auto", labels: Optional[Sequence[str]] = None) -> list[dict]:
    """Prune every checkpoint at every fraction (by gate and at random); write tables and the plot.

    A checkpoint is a ``.ckpt`` or a run folder; model and data come from the run's
    config.yaml, or ``config``. Models without a gate module are skipped and named.
    """
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
    from recal.analysis import plots

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
