"""A whole-network train step (forward, backward, SGD; batch 8, 224²) of recal's ResNet-50
family against ``torchvision.models.resnet50``.

    python -m benchmarks.bench_network [--threads 2] [--repeats 7] [--batch 8] [--kernels compiled]

Goals (time ratio to torchvision's ResNet-50, lower is better): recal ResNet-50 ≤ 1.02,
SRM-ResNet-50 ≤ 1.05, SE-ResNet-50 ≤ 1.05, GE-ResNet-50 ≤ 1.08.
"""

from __future__ import annotations

import torch
import torchvision

from benchmarks.timing import Row, benchmark_args, compare, print_table
from recal.models import create_model

GOALS = {"resnet50": 1.02, "srm_resnet50": 1.05, "se_resnet50": 1.05, "ge_resnet50": 1.08}


def train_step(model: torch.nn.Module, batch: int, size: int, channels_last: bool):
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return run


def main() -> None:
    args = benchmark_args(__doc__, repeats=5, images=True,
                          add=lambda p: p.add_argument("--channels-last", action="store_true"))
    torch.manual_seed(0)
    steps = {"torchvision": train_step(torchvision.models.resnet50(), args.batch, args.size, args.channels_last)}
    for name in GOALS:
        steps[name] = train_step(create_model(name, input_size=args.size), args.batch, args.size, args.channels_last)
    results = compare(steps, "torchvision", args.repeats, warmup=2)
    rows = [Row(f"{name} train step (batch {args.batch}, {args.size}²) / torchvision resnet50", 1e3 * r.baseline_s,
                1e3 * r.candidate_s, r.ratio, f"≤ {GOALS[name]:.2f}", r.ratio <= GOALS[name])
            for name, r in results.items()]
    print_table(f"Whole-network train step (kernels: {args.kernels}, channels_last: {args.channels_last})", rows)


if __name__ == "__main__":
    main()
