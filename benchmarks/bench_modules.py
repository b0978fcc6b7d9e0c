"""recal's SRM / SE / GE modules, forward + backward, against the official / timm
formulations at the four ResNet-50 stage shapes (batch 8).

    python benchmarks/bench_modules.py [--threads 2] [--repeats 7] [--kernels compiled|eager]
"""

from __future__ import annotations

import torch

from benchmarks.baselines import OfficialGE, TimmSE
from benchmarks.official_srm import OfficialSRM
from benchmarks.timing import Row, benchmark_args, compare, print_table
from recal.models import create_recalibration

SHAPES = [(8, 256, 56, 56), (8, 512, 28, 28), (8, 1024, 14, 14), (8, 2048, 7, 7)]
GOALS = {"srm": (2.0, 2.0, 2.0, 1.3), "se": (1.0,) * 4, "ge": (1.0,) * 4}


def train_step(module: torch.nn.Module, x: torch.Tensor):
    def run() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()
    return run


def main() -> None:
    args = benchmark_args(__doc__)
    rows = []
    for name in ("srm", "se", "ge"):
        for i, shape in enumerate(SHAPES):
            n, c, h, w = shape
            x = torch.randn(shape, requires_grad=True)
            if name == "srm":
                baseline, ours = OfficialSRM(c), create_recalibration("srm", c)
            elif name == "se":
                baseline, ours = TimmSE(c), create_recalibration("se", c)
            else:
                baseline, ours = OfficialGE(c, h), create_recalibration("ge", c, spatial_size=h)
            result = compare({"base": train_step(baseline, x), "ours": train_step(ours, x)}, "base", args.repeats)["ours"]
            ratio = 1 / result.ratio  # speed-up: baseline time / recal time
            goal = GOALS[name][i]
            rows.append(Row(f"{name.upper()} fwd+bwd {n}×{c}×{h}×{w}", 1e3 * result.baseline_s, 1e3 * result.candidate_s,
                            ratio, f"≥ {goal:.2f}× faster", ratio >= goal))
    print_table(f"Recalibration modules, forward + backward (kernels: {args.kernels})", rows)


if __name__ == "__main__":
    main()
