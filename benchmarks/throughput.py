"""Images per second against multiply-adds: FLOPs are not speed.

    python -m benchmarks.throughput [--batch 8] [--size 224] [--repeats 5] [--models resnet50 sknet50 …]
                                    [--device cpu|cuda] [--precision 32|bf16] [--channels-last] [--tiny]

For each model: parameters, multiply-adds per image (the papers' convention,
:func:`recal.analysis.complexity.count_macs`), and train (forward, cross-entropy, backward,
SGD) and inference (eval, no gradients) images/s at one batch size, every model timed
interleaved with ResNet-50 in the same run, which makes the throughput ratios to it
comparable. Writes ``throughput.{csv,md}`` and ``throughput.{png,pdf}`` (GMACs against
images/s) under ``--out``, and prints the table. The claim it tests: networks of equal
multiply-adds (ResNeSt-50-fast and ResNet-D-50 both count 4.34 G) need not run equally fast,
and grouped, split-attention and selective-kernel convolutions cost more time than their
multiply-adds say.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from benchmarks.steps import inference_step, train_step
from benchmarks.timing import benchmark_args, interleaved_times, machine
from recal.analysis import plots, tables
from recal.analysis.complexity import count_macs, count_parameters
from recal.models import create_model

MODELS = ("resnet50", "resnet50d", "se_resnet50", "srm_resnet50", "ge_resnet50", "eca_resnet50", "cbam_resnet50",
          "resnext50_32x4d", "sknet50", "resnest50", "resnest50_fast")
BASELINE = "resnet50"


def _add_options(parser) -> None:
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"model names; {BASELINE} is always timed")
    parser.add_argument("--out", default="runs/throughput", help="folder for throughput.{csv,md,png,pdf}")


def throughput_plot(rows: list[dict], title: str, path: Path) -> Path:
    """Multiply-adds against images/s, one panel per mode, one labelled point per model."""
    fig, axes = plots.plt.subplots(1, 2, figsize=(10.0, 4.2), sharex=True)
    for ax, mode in zip(axes, ("train", "inference")):
        for i, r in enumerate(rows):
            ax.scatter(r["GMACs"], r[f"{mode} img/s"], color=f"C{i % 10}")
            ax.annotate(r["model"], (r["GMACs"], r[f"{mode} img/s"]), fontsize=6, xytext=(3, 2),
                        textcoords="offset points")
        ax.set_xlabel("multiply-adds per image (G)")
        ax.set_ylabel(f"{mode} images / s")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return plots.save(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    args = benchmark_args(__doc__, repeats=5, images=True, add=_add_options, argv=argv)
    names = list(dict.fromkeys([BASELINE, *args.models]))
    torch.manual_seed(0)
    models = {name: create_model(name, input_size=args.size) for name in names}
    counts = {name: (count_parameters(m), count_macs(m, args.size)) for name, m in models.items()}
    timed = {}
    for mode, step in (("train", train_step), ("inference", inference_step)):
        fns = {name: step(m, args.batch, args.size, args.setting) for name, m in models.items()}
        timed[mode] = interleaved_times(fns, args.repeats, args.warmup)
    rows = []
    for name in names:
        row = {"model": name, "params": counts[name][0], "GMACs": round(counts[name][1] / 1e9, 3)}
        for mode, times in timed.items():
            row[f"{mode} img/s"] = round(args.batch / statistics.median(times[name]), 2)
            # throughput ratio, median over rounds: each round's baseline call ran seconds apart from this model's
            row[f"{mode} × {BASELINE}"] = round(statistics.median(
                b / t for t, b in zip(times[name], times[BASELINE])), 3)
        rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = f"batch {args.batch}, {args.size}², {machine()}"
    tables.write_csv(rows, out / "throughput.csv")
    tables.write_markdown(rows, out / "throughput.md", title="Throughput", note=title)
    throughput_plot(rows, title, out / "throughput.png")
    print(f"\n### Throughput ({title})\n\n{tables.markdown_table(rows)}\n\n{out}")
    return rows


if __name__ == "__main__":
    main()
