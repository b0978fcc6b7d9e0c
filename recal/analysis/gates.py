"""Gate statistics over a validation set, observed through the gate modules' one hook.

Every gate module (:class:`recal.layers.gate.ChannelGate`) calls the hooks registered with
:meth:`~recal.models.ChannelGate.register_gate_hook` with the gate it computed,
(N, C) — or (N, C, H, W) for Gather-Excite with a finite extent, which is
averaged over space here so that every module yields one value per sample and
channel. For CBAM that is its channel gate; its spatial gate (N, 1, H, W), which
weighs positions, not channels, is not recorded. It is the gate as applied, times the
module's amplitude: in [0, 2] for identity-initialised gates. :class:`GateRecorder`
accumulates, per gated block: a 1000-bin histogram over [0, amplitude] (distributions
and quantiles to 0.001 of it), the per-channel
mean (what pruning ranks by) and, for the last stage, the per-class mean gate
of every channel (the SE paper's analysis of what the excitation learns).
SK and split attention replace a convolution and have no channel gate: they are
reported as not applicable. :func:`gate_statistics` records every checkpoint given
and writes, per checkpoint, distributions, channel means and per-class heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from torch import Tensor, nn

from recal.analysis.runs import load_run, resolve_device, unique_labels
from recal.analysis.validation import evaluate
from recal.layers.gate import ChannelGate
from recal.layers.sk import SelectiveKernelConv
from recal.layers.splat import SplitAttentionConv

HIST_BINS = 1000
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def gated_blocks(model: nn.Module) -> dict[str, ChannelGate]:
    """Every gate module of ``model`` by qualified name, in forward order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, ChannelGate)}


def not_applicable_reason(model: nn.Module) -> Optional[str]:
    """Why gate analyses do not apply to ``model`` (no gate module), or None when they do."""
    if gated_blocks(model):
        return None
    kinds = {type(m) for m in model.modules()}
    if SelectiveKernelConv in kinds:
        return "not applicable: selective kernel (sk) is a conv replacement with no channel gate"
    if SplitAttentionConv in kinds:
        return "not applicable: split attention (splat) is a conv replacement with no channel gate"
    return "not applicable: the model has no recalibration module"


def block_label(name: str) -> str:
    """A short block name for tables and plots: ``model.layer3.2.gate`` → ``layer3.2``."""
    name = name.removeprefix("model.")
    return name.rsplit(".", 1)[0] if name.count(".") >= 2 else name


def last_stage(names: Sequence[str]) -> list[str]:
    """The gated blocks of the last stage: those sharing the last block's parent (``layer3``)."""
    if not names:
        return []
    stage = lambda name: name.rsplit(".", 2)[0]  # noqa: E731  (``<stage>.<index>.<gate>``)
    return [name for name in names if stage(name) == stage(names[-1])]


@dataclass
class BlockStats:
    """Running sums of one block's gates over the samples seen so far; the histogram spans [0, ``top``]."""

    channels: int
    top: float = 1.0  # the largest gate the block applies: its amplitude
    samples: int = 0
    histogram: Optional[Tensor] = None
    channel_sum: Optional[Tensor] = None
    square_sum: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")
    class_sum: Optional[Tensor] = None

    def channel_means(self) -> np.ndarray:
        """The mean gate of every channel (C,)."""
        return (self.channel_sum / max(self.samples, 1)).numpy()

    def summary(self) -> dict[str, float]:
        """Mean, std, min, quantiles and max of every gate value (samples × channels)."""
        total = self.samples * self.channels
        mean = float(self.channel_sum.sum()) / total
        std = max(self.square_sum / total - mean * mean, 0.0) ** 0.5
        cumulative = self.histogram.cumsum(0) / self.histogram.sum()
        centers = (torch.arange(HIST_BINS, dtype=torch.float64) + 0.5) * (self.top / HIST_BINS)
        quantiles = {f"p{int(q * 100):02d}": float(centers[int(torch.searchsorted(cumulative, q))]) for q in QUANTILES}
        return {"mean": mean, "std": std, "min": self.low, **quantiles, "max": self.high}


class GateRecorder:
    """Accumulate gate statistics of ``blocks`` while a model runs (a context manager).

    ``per_class`` names the blocks whose per-class channel means are kept;
    call :meth:`set_targets` with each batch's labels before its forward.
    """

    def __init__(self, blocks: dict[str, ChannelGate], num_classes: int = 0, per_class: Sequence[str] = ()) -> None:
        self.blocks = blocks
        self.num_classes = num_classes
        self.per_class = set(per_class)
        self.stats = {name: BlockStats(gate.channels, gate.amplitude) for name, gate in blocks.items()}
        self.class_counts = torch.zeros(num_classes, dtype=torch.float64)
        self._targets: Optional[Tensor] = None
        self._handles: list[Any] = []

    def set_targets(self, targets: Tensor) -> None:
        """The labels of the batch about to run (per-class statistics)."""
        self._targets = targets.detach().cpu()
        if self.num_classes:
            self.class_counts += torch.bincount(self._targets, minlength=self.num_classes).double()

    def _hook(self, name: str) -> Callable[[ChannelGate, Tensor], None]:
        def record(module: ChannelGate, gate: Tensor) -> None:
            g = gate.detach().float()
            g = (g.mean((2, 3)) if g.dim() == 4 else g).cpu().double()
            s = self.stats[name]
            hist = torch.histc(g, bins=HIST_BINS, min=0.0, max=s.top)
            s.histogram = hist if s.histogram is None else s.histogram + hist
            s.channel_sum = g.sum(0) if s.channel_sum is None else s.channel_sum + g.sum(0)
            s.square_sum += float((g * g).sum())
            s.low, s.high = min(s.low, float(g.min())), max(s.high, float(g.max()))
            s.samples += g.shape[0]
            if name in self.per_class and self._targets is not None:
                per_class = torch.zeros(self.num_classes, g.shape[1], dtype=torch.float64).index_add_(0, self._targets, g)
                s.class_sum = per_class if s.class_sum is None else s.class_sum + per_class
        return record

    def __enter__(self) -> "GateRecorder":
        self._handles = [gate.register_gate_hook(self._hook(name)) for name, gate in self.blocks.items()]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def class_means(self, name: str) -> np.ndarray:
        """Mean gate per class and channel (K, C) of a per-class block (NaN for unseen classes)."""
        counts = self.class_counts.clamp(min=1)[:, None]
        means = (self.stats[name].class_sum / counts).numpy()
        means[self.class_counts.numpy() == 0] = np.nan
        return means


def class_names(datamodule: Any, num_classes: int) -> list[str]:
    """The dataset's class names when it exposes them (``classes``), else ``0 … K−1``."""
    node = getattr(datamodule, "val_sets", None)
    node = next(iter(node.values())) if isinstance(node, dict) and node else None
    for _ in range(4):  # transform wrapper → Subset → dataset
        if node is None:
            break
        names = getattr(node, "classes", None)
        if names is not None and len(names) == num_classes:
            return [str(n) for n in names]
        node = getattr(node, "dataset", None)
    return [str(i) for i in range(num_classes)]


def write_gate_outputs(recorder: GateRecorder, names: Sequence[str], classes: Sequence[str], title: str,
                       folder: Path) -> list[dict[str, Any]]:
    """Write distributions (CSV, MD, PNG), channel means (CSV) and per-class heatmaps (CSV, PNG)."""
    from recal.analysis import plots, tables

    folder.mkdir(parents=True, exist_ok=True)
    tops = {recorder.stats[n].top for n in names}
    if len(tops) > 1:  # one factory builds a network's gates alike; mixed amplitudes share no bin edges
        raise ValueError(f"gated blocks of amplitudes {sorted(tops)} cannot share one histogram range")
    top = tops.pop() if tops else 1.0
    rows = [{"block": block_label(n), "channels": recorder.stats[n].channels, "samples": recorder.stats[n].samples,
             **recorder.stats[n].summary()} for n in names]
    tables.write_csv(rows, folder / "gate_distributions.csv")
    shown = [{**r, **{k: f"{v:.3f}" for k, v in r.items() if isinstance(v, float)}} for r in rows]
    tables.write_markdown(shown, folder / "gate_distributions.md", f"Gate distributions — {title}",
                          "Every gate value (validation samples × channels) per gated block; quantiles from a "
                          f"{HIST_BINS}-bin histogram over [0, {top:g}]. Finite-extent GE gates are averaged over "
                          "space.")
    tables.write_csv([{"block": block_label(n), "channel": c, "mean_gate": float(v)} for n in names
                      for c, v in enumerate(recorder.stats[n].channel_means())], folder / "channel_means.csv")
    edges = np.linspace(0.0, top, HIST_BINS + 1)
    histograms = np.stack([recorder.stats[n].histogram.numpy() for n in names])
    plots.gate_violins([block_label(n) for n in names], histograms, edges, [r["mean"] for r in rows],
                       f"gate distribution per block — {title}", folder / "gate_distributions.png")
    maps = {}
    for n in recorder.per_class:
        means = recorder.class_means(n)
        maps[block_label(n)] = means
        tables.write_csv([{"class": name, **{f"ch{c}": float(v) for c, v in enumerate(row)}}
                          for name, row in zip(classes, means)], folder / f"per_class_{block_label(n)}.csv")
    ordered = {block_label(n): maps[block_label(n)] for n in names if n in recorder.per_class}
    if ordered:
        plots.class_heatmaps(ordered, list(classes), f"mean gate per class, last stage — {title}",
                             folder / "per_class_gates.png")
    return rows


def gate_statistics(checkpoints: Sequence[str], out: Path, config: Optional[str] = None, which: str = "best",
                    limit_batches: Optional[int] = None, device: str = "auto") -> list[dict[str, Any]]:
    """Record the gates of every checkpoint over its validation set; write its outputs and ``summary.md``.

    Per checkpoint (a ``.ckpt`` or a run folder; model and data from the run's config.yaml,
    or ``config``), under ``<out>/<model>/``: ``gate_distributions.{csv,md,png,pdf}``,
    ``channel_means.csv`` and, for the blocks of the last stage, ``per_class_<block>.csv``
    and ``per_class_gates.{png,pdf}``. A model without a channel gate is listed in
    ``summary.md`` as not applicable.
    """
    from recal.analysis import tables
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
