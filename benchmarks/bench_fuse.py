"""Inference after ``recal.models.fuse``: fused SRM-ResNet-50 eval throughput against the
equally fused plain ResNet-50 (goal: time ratio ≤ 1.03).

    python -m benchmarks.bench_fuse [--threads 2] [--repeats 7] [--batch 8] [--kernels compiled]
                                    [--device cpu|cuda] [--precision 32|bf16] [--channels-last] [--tiny]
"""

from __future__ import annotations

from benchmarks.steps import inference_step
from benchmarks.timing import Row, benchmark_args, compare, print_table
from recal.models import create_model, fuse


def main(argv: list[str] | None = None) -> list[Row]:
    args = benchmark_args(__doc__, images=True, argv=argv)
    models = {name: fuse(create_model(name, input_size=args.size)) for name in ("resnet50", "srm_resnet50", "se_resnet50")}
    results = compare({n: inference_step(m, args.batch, args.size, args.setting) for n, m in models.items()},
                      "resnet50", args.repeats, args.warmup)
    goals = {"srm_resnet50": 1.03, "se_resnet50": None}
    rows = []
    for name, r in results.items():
        goal = goals[name]
        rows.append(Row(f"fused {name} eval (batch {args.batch}) / fused resnet50", 1e3 * r.baseline_s,
                        1e3 * r.candidate_s, r.ratio, f"≤ {goal:.2f}" if goal else "(report)",
                        None if goal is None else r.ratio <= goal))
    print_table(f"Fused inference (kernels: {args.kernels}, {args.setting.describe()})", rows)
    return rows


if __name__ == "__main__":
    main()
