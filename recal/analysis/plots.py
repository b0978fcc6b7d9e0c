"""The figures of the analysis commands (matplotlib, Agg backend: no display needed).

Each function draws one figure kind and saves it as PNG (for READMEs and
notebooks) and PDF (vector, for papers) beside each other. Colours follow
matplotlib's default cycle so that one model keeps one colour across a figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: the commands run on headless machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 150


def save(fig: plt.Figure, path: Path) -> Path:
    """Save ``fig`` as ``path`` (.png) and beside it as .pdf; close it; return the PNG path."""
    path = Path(path).with_suffix(".png")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    plt.close(fig)
    return path


def bar_chart(labels: Sequence[str], means: Sequence[float], stds: Sequence[float], points: Sequence[Sequence[float]],
              ylabel: str, title: str, path: Path, ceiling: float | None = None) -> Path:
    """Bars of ``means`` with ±``stds`` error bars and each seed's value as a dot.

    The value axis is zoomed to the data (ablation differences are small next
    to the accuracy itself) and stops near ``ceiling`` (100 for accuracies in
    percent); the figure says so when it does not start at 0.
    """
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 1.5), 3.6))
    x = np.arange(len(labels))
    errors = np.nan_to_num(np.asarray(stds, dtype=float))
    colors = [f"C{i % 10}" for i in range(len(labels))]
    ax.bar(x, means, yerr=errors, capsize=4, color=colors, alpha=0.75, edgecolor="black", linewidth=0.6)
    for i, values in enumerate(points):
        ax.scatter(np.full(len(values), x[i]) + np.linspace(-0.12, 0.12, len(values)), values, s=12,
                   color="black", zorder=3)
    every = [v for values in points for v in values] + [m + e for m, e in zip(means, errors)] + \
            [m - e for m, e in zip(means, errors)]
    every = [v for v in every if np.isfinite(v)]
    if every:
        low, high = min(every), max(every)
        pad = max(0.5 * (high - low), 0.5)
        bottom, top = max(0.0, low - pad), high + pad
        if ceiling is not None:
            top = min(top, ceiling + 0.03 * (ceiling - bottom))
        ax.set_ylim(bottom, top)
        if bottom > 0:
            ax.text(1.0, 1.01, "value axis does not start at 0", transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=7, color="gray")
    long_labels = max(map(len, labels), default=0) > 8
    ax.set_xticks(x, labels, rotation=30 if long_labels else 0, ha="right" if long_labels else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def complexity_plot(labels: Sequence[str], gmacs: Sequence[float], mparams: Sequence[float],
                    paper_gflops: Sequence[float | None], title: str, path: Path) -> Path:
    """Two panels, one row per model: parameters, and our multiply-adds with the paper's figure marked."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 0.42 * len(labels) + 1.4), sharey=True)
    y = np.arange(len(labels))[::-1]  # first model on top
    colors = [f"C{i % 10}" for i in range(len(labels))]
    left.barh(y, mparams, color=colors, alpha=0.75)
    right.barh(y, gmacs, color=colors, alpha=0.75, label="ours (conv + linear)")
    for yi, params, macs, paper in zip(y, mparams, gmacs, paper_gflops):
        left.text(params, yi, f" {params:.2f}", va="center", fontsize=7)
        text = f" {macs:.3f}" if macs >= 1 else f" {macs:.4f}"
        if paper is not None:
            right.plot([paper, paper], [yi - 0.4, yi + 0.4], color="black", linewidth=1.5)
            text += f" (paper {paper:.2f})"
        right.text(max(macs, paper or 0), yi, text, va="center", fontsize=7)
    if any(p is not None for p in paper_gflops):
        right.plot([], [], color="black", linewidth=1.5, label="paper's GFLOPs")
        right.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    left.set_yticks(y, labels, fontsize=8)
    left.set_xlabel("parameters (M)")
    right.set_xlabel("multiply-adds per image (G)")
    for ax in (left, right):
        ax.set_xlim(0, ax.get_xlim()[1] * (1.25 if ax is left else 1.5))  # room for the numbers
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


@dataclass
class Curve:
    """One line of the pruning plot: top-1 per pruned fraction, with an optional ±std band."""

    label: str
    fractions: Sequence[float]
    values: Sequence[float]
    stds: Sequence[float] = field(default_factory=list)
    color: str = "C0"
    dashed: bool = False


def pruning_plot(curves: Sequence[Curve], title: str, path: Path) -> Path:
    """Top-1 against the fraction of channels pruned per block, one line per curve, with a legend."""
    fig, ax = plt.subplots(figsize=(5.6, 3.9))
    for curve in curves:
        x = 100 * np.asarray(curve.fractions, dtype=float)
        y = 100 * np.asarray(curve.values, dtype=float)
        ax.plot(x, y, linestyle="--" if curve.dashed else "-", marker="s" if curve.dashed else "o",
                markersize=4, color=curve.color, label=curve.label)
        if len(curve.stds):
            s = 100 * np.nan_to_num(np.asarray(curve.stds, dtype=float))
            # accuracy cannot leave [0, 100]: clip the band rather than draw impossible values
            ax.fill_between(x, np.clip(y - s, 0, 100), np.clip(y + s, 0, 100), color=curve.color, alpha=0.15,
                            linewidth=0)
    ax.set_xlabel("channels pruned per gated block (%)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)


def gate_violins(blocks: Sequence[str], histograms: np.ndarray, edges: np.ndarray, means: Sequence[float],
                 title: str, path: Path, bins: int = 50) -> Path:
    """Per-block gate distributions drawn as violins from histograms (width ∝ density)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(blocks) + 2.0), 3.8))
    # Re-bin the fine histogram for a smooth outline; the CSV keeps the exact quantiles.
    factor = max(1, histograms.shape[1] // bins)
    coarse = histograms[:, : factor * (histograms.shape[1] // factor)].reshape(len(blocks), -1, factor).sum(2)
    centers = edges[:-1][: coarse.shape[1] * factor].reshape(-1, factor).mean(1) + (edges[1] - edges[0]) * factor / 2
    for i, counts in enumerate(coarse):
        width = counts / counts.max() * 0.4 if counts.max() > 0 else counts
        ax.fill_betweenx(centers, i - width, i + width, color=f"C{i % 10}", alpha=0.6, linewidth=0)
        ax.plot([i - 0.25, i + 0.25], [means[i], means[i]], color="black", linewidth=1)
    ax.set_xticks(range(len(blocks)), blocks, rotation=60, ha="right", fontsize=7)
    # Zoom to where the gates are (an untrained SRM sits at exactly 0.5), within the histogram's [0, amplitude].
    filled = np.flatnonzero(histograms.sum(0))
    if filled.size:
        low, high = edges[filled[0]], edges[filled[-1] + 1]
        pad = max(0.1 * (high - low), 0.01)
        ax.set_ylim(max(0.0, low - pad), min(edges[-1], high + pad))
    ax.set_ylabel("gate value (black: mean)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def class_heatmaps(maps: Mapping[str, np.ndarray], class_names: Sequence[str], title: str, path: Path) -> Path:
    """One heatmap per block: mean gate per class (rows) and channel (columns), shared colour scale."""
    names = list(maps)
    values = np.concatenate([m.ravel() for m in maps.values()]) if maps else np.zeros(1)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    height = (min(max(0.16 * len(class_names), 1.2), 4.0) + 0.5) * len(names) + 0.5
    fig, axes = plt.subplots(len(names), 1, figsize=(7.0, height), squeeze=False, layout="constrained")
    image = None
    for ax, name in zip(axes[:, 0], names):
        image = ax.imshow(maps[name], aspect="auto", interpolation="nearest", cmap="viridis", vmin=low, vmax=high)
        ax.set_title(name, fontsize=9)
        if len(class_names) <= 20:  # beyond that the labels are unreadable; the CSV names them
            ax.set_yticks(range(len(class_names)), class_names, fontsize=6)
        ax.set_ylabel("class", fontsize=8)
    axes[-1, 0].set_xlabel("channel")
    if image is not None:
        fig.colorbar(image, ax=axes[:, 0].tolist(), label="mean gate", shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def grouped_drop_bars(groups: Sequence[str], series: Sequence[str], drops: np.ndarray, ylabel: str, title: str,
                      path: Path) -> Path:
    """Bars of ``drops[g, s]`` (percentage points) grouped by ``groups``, one colour per series, with a legend.

    A NaN is a combination that does not apply (e.g. SRM's style statistics on a network
    without SRM): it is left out and marked "n/a" at the axis.
    """
    drops = np.asarray(drops, dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) + 2.0), 3.8))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for j, name in enumerate(series):
        offsets = x - 0.4 + (j + 0.5) * width
        values = drops[:, j]
        shown = np.isfinite(values)
        ax.bar(offsets[shown], values[shown], width, color=f"C{j % 10}", edgecolor="black", linewidth=0.5)
        # the value on every bar: a drop of 0 has no visible bar and must still read as measured
        for offset, value in zip(offsets[shown], values[shown]):
            ax.text(offset, value, f"{value:.1f}", ha="center", va="bottom" if value >= 0 else "top", fontsize=6)
        for offset in offsets[~shown]:
            ax.text(offset, 0, "n/a", ha="center", va="bottom", fontsize=6, color="gray", rotation=90)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=f"C{j % 10}", edgecolor="black", linewidth=0.5, label=name)
               for j, name in enumerate(series)]
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, groups, rotation=20 if max(map(len, groups), default=0) > 10 else 0, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=handles, fontsize=7, ncol=min(len(series), 3))
    return save(fig, path)


def per_block_lines(blocks: Mapping[str, Sequence[str]], values: Mapping[str, Sequence[float]], ylabel: str,
                    title: str, path: Path) -> Path:
    """One line per model over its blocks in forward order (``values[model][i]`` at ``blocks[model][i]``)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    longest: Sequence[str] = []
    for i, (model, names) in enumerate(blocks.items()):
        ax.plot(np.arange(len(names)), values[model], marker="o", markersize=4, color=f"C{i % 10}", label=model)
        longest = names if len(names) > len(longest) else longest
    ax.set_xticks(np.arange(len(longest)), longest, rotation=45, ha="right", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("block quantized alone (rest float32)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)
