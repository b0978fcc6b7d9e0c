"""A whole-network train step (forward, backward, SGD; batch 8, 224²) of recal's ResNet-50
family against ``torchvision.models.resnet50``.

    python -m benchmarks.bench_network [--threads 2] [--repeats 5] [--batch 8] [--kernels compiled]
                                       [--device cpu|cuda] [--precision 32|bf16] [--channels-last] [--tiny]

Goals (time ratio to torchvision's ResNet-50, lower is better): recal ResNet-50 ≤ 1.02,
SRM-ResNet-50 ≤ 1.05, SE-ResNet-50 ≤ 1.05, GE-ResNet-50 ≤ 1.08.
"""

from __future__ import annotations

import torch
import torchvision

from benchmarks.steps import train_step
from benchmarks.timing import Row, benchmark_args, compare, print_table
from recal.models import create_model

GOALS = {"resnet50": 1.02, "srm_resnet50": 1.05, "se_resnet50": 1.05, "ge_resnet50": 1.08}


def main(argv: list[str] | None = None) -> list[Row]:
    args = benchmark_args(__doc__, repeats=5, images=True, argv=argv)
    torch.manual_seed(0)
    steps = {"torchvision": train_step(torchvision.models.resnet50(), args.batch, args.size, args.setting)}
    for name in GOALS:
        steps[name] = train_step(create_model(name, input_size=args.size), args.batch, args.size, args.setting)
    results = compare(steps, "torchvision", args.repeats, args.warmup)
    rows = [Row(f"{name} train step (batch {args.batch}, {args.size}²) / torchvision resnet50", 1e3 * r.baseline_s,
                1e3 * r.candidate_s, r.ratio, f"≤ {GOALS[name]:.2f}", r.ratio <= GOALS[name])
            for name, r in results.items()]
    print_table(f"Whole-network train step (kernels: {args.kernels}, {args.setting.describe()})", rows)
    return rows


if __name__ == "__main__":
    main()
