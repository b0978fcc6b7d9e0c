"""Inference after ``recal.models.fuse``: fused SRM-ResNet-50 eval throughput against the
equally fused plain ResNet-50 (goal: time ratio ≤ 1.03).

    python -m benchmarks.bench_fuse [--threads 2] [--repeats 7] [--batch 8] [--kernels compiled]
"""

from __future__ import annotations

import torch

from benchmarks.timing import Row, benchmark_args, compare, print_table
from recal.models import create_model, fuse


def inference(model: torch.nn.Module, batch: int, size: int):
    x = torch.randn(batch, 3, size, size)

    def run() -> None:
        with torch.inference_mode():
            model(x)
    return run


def main() -> None:
    args = benchmark_args(__doc__, images=True)
    models = {name: fuse(create_model(name)) for name in ("resnet50", "srm_resnet50", "se_resnet50")}
    results = compare({n: inference(m, args.batch, args.size) for n, m in models.items()}, "resnet50", args.repeats)
    goals = {"srm_resnet50": 1.03, "se_resnet50": None}
    rows = []
    for name, r in results.items():
        goal = goals[name]
        rows.append(Row(f"fused {name} eval (batch {args.batch}) / fused resnet50", 1e3 * r.baseline_s,
                        1e3 * r.candidate_s, r.ratio, f"≤ {goal:.2f}" if goal else "(report)",
                        goal is None or r.ratio <= goal))
    print_table(f"Fused inference (kernels: {args.kernels})", rows)


if __name__ == "__main__":
    main()
