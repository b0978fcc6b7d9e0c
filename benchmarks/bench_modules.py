"""recal's SRM / SE / GE modules, forward + backward, against the official / timm
formulations at the four ResNet-50 stage shapes (batch 8).

    python -m benchmarks.bench_modules [--threads 2] [--repeats 7] [--kernels compiled|eager]
                                       [--device cpu|cuda] [--precision 32|bf16] [--channels-last] [--tiny]

``--tiny`` runs the same rows at batch 2 and an eighth of the channels and the width.
"""

from __future__ import annotations

from typing import Callable

import torch

from benchmarks.baselines import OfficialGE, TimmSE
from benchmarks.official_srm import OfficialSRM
from benchmarks.timing import Row, Setting, benchmark_args, compare, print_table
from recal.models import create_recalibration

SHAPES = [(8, 256, 56, 56), (8, 512, 28, 28), (8, 1024, 14, 14), (8, 2048, 7, 7)]
GOALS = {"srm": (2.0, 2.0, 2.0, 1.3), "se": (1.0,) * 4, "ge": (1.0,) * 4}


def train_step(module: torch.nn.Module, x: torch.Tensor, setting: Setting = Setting()) -> Callable[[], None]:
    """Forward under the setting's autocast, backward of the sum into x and the module's parameters."""
    def run() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        with setting.autocast():
            y = module(x)
        y.float().sum().backward()
    return run


def tiny_shape(shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    n, c, h, w = shape
    return 2, c // 8, max(h // 8, 2), max(w // 8, 2)  # the official SRM needs two values for a variance


def main(argv: list[str] | None = None) -> list[Row]:
    args = benchmark_args(__doc__, argv=argv)
    setting = args.setting
    rows = []
    for name in ("srm", "se", "ge"):
        for i, shape in enumerate(SHAPES):
            n, c, h, w = tiny_shape(shape) if args.tiny else shape
            x = setting.tensor(torch.randn(n, c, h, w)).requires_grad_()
            if name == "srm":
                baseline, ours = OfficialSRM(c), create_recalibration("srm", c)
            elif name == "se":
                baseline, ours = TimmSE(c), create_recalibration("se", c)
            else:
                baseline, ours = OfficialGE(c, h), create_recalibration("ge", c, spatial_size=h)
            baseline, ours = setting.place(baseline), setting.place(ours)
            result = compare({"base": train_step(baseline, x, setting), "ours": train_step(ours, x, setting)}, "base",
                             args.repeats, args.warmup)["ours"]
            ratio = 1 / result.ratio  # speed-up: baseline time / recal time
            goal = GOALS[name][i]
            rows.append(Row(f"{name.upper()} fwd+bwd {n}×{c}×{h}×{w}", 1e3 * result.baseline_s, 1e3 * result.candidate_s,
                            ratio, f"≥ {goal:.2f}× faster", ratio >= goal))
    print_table(f"Recalibration modules, forward + backward (kernels: {args.kernels}, {setting.describe()})", rows)
    return rows


if __name__ == "__main__":
    main()
